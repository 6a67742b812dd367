// An executor's liveness lease, kept by its heartbeats: each keeps the lease alive, or takes a
// new one when it lapsed, and writes the record's state when it changes. See expiry.ts for
// what happens when a lease lapses.

import type { ExecutorRecord, ExecutorState } from '../domain/executor.js';
import { UnauthenticatedError } from '../errors.js';
import type { ExecutorStore, LeaseStore } from '../store/store.js';
import type { Logger } from '../util/log.js';

/** What a heartbeat reports that the record keeps. */
export interface BeatReport {
  version: string;
  draining: boolean;
}

export class ExecutorLeases {
  /** The heartbeat of each executor being worked on here, for the next one to wait for. */
  private readonly beating = new Map<string, Promise<unknown>>();
  /**
   * The lease each executor's last heartbeat here kept or took. A beat starts from the
   * registry's copy of the record, which its watch keeps and which falls behind under load; a
   * beat that trusted a copy naming the lease before took yet another lease, orphaning the one
   * the last beat took (in the 10,000-executor bench, leases granted and lapsed at 130 a second
   * without a single executor expiring).
   */
  private readonly held = new Map<string, string>();

  constructor(
    private readonly store: ExecutorStore,
    private readonly leases: LeaseStore,
    private readonly pingDeadlineSeconds: number,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {}

  /**
   * Heartbeats of one executor are worked on one after another, each from the record as the one
   * before left it. Two at once (a beat retried on a new stream while the first still waits for
   * etcd) could both find the lease lapsed and both take a new one; their alive-key and record
   * writes could then interleave so that the record names one lease and the alive key is bound
   * to the other, which nothing keeps alive: the executor was declared dead again a TTL later.
   */
  beat(rec: ExecutorRecord, input: BeatReport): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }> {
    const first = !this.beating.has(rec.id);
    return this.inOrder(rec.id, async () => this.beatOnce(first ? rec : ((await this.store.getFast(rec.id)) ?? rec), input));
  }

  /**
   * Runs `fn` once the executor's heartbeats before it are done, and before any after it: a
   * deregistration goes through here too, so that a beat still queued when the executor stops
   * cannot make it DRAINING or ACTIVE again after it was marked STOPPED.
   */
  inOrder<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.beating.get(id);
    const run = before ? before.then(fn, fn) : fn();
    this.beating.set(id, run);
    const done = () => {
      if (this.beating.get(id) === run) this.beating.delete(id);
    };
    run.then(done, done);
    return run;
  }

  /** Forgets the executor's lease (it stopped or was removed). */
  forget(id: string): void {
    this.held.delete(id);
  }

  private async beatOnce(rec: ExecutorRecord, input: BeatReport): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }> {
    const at = this.now();
    const wanted: ExecutorState = input.draining ? 'DRAINING' : 'ACTIVE';

    // A keep-alive etcd did not answer in time fails this heartbeat (the executor retries soon):
    // the lease is most likely still there, and taking a new one for each slow answer would
    // add three writes per heartbeat exactly when etcd is behind (and orphan leases to expire).
    let ttl = rec.lease_id ? await this.leases.keepAlive(rec.lease_id) : 0;
    let leaseId = rec.lease_id;
    const held = this.held.get(rec.id);
    if (ttl === 0 && held && held !== rec.lease_id) {
      // The copy of the record is behind this controller's last write: keep the lease that write
      // named, and bind alive/<id> to it again (another replica may have moved it meanwhile).
      ttl = await this.leases.keepAlive(held);
      if (ttl > 0) {
        leaseId = held;
        await this.store.putAlive(rec.id, leaseId);
      }
    }
    if (ttl === 0) {
      // No lease, or it lapsed: take a new one and bind alive/<id> to it *before* the record
      // says ACTIVE, so the expiry watcher never sees an ACTIVE record without an alive key.
      leaseId = await this.leases.grant(this.pingDeadlineSeconds);
      await this.store.putAlive(rec.id, leaseId);
    }
    this.held.set(rec.id, leaseId);
    if (rec.state !== wanted || rec.lease_id !== leaseId || rec.version !== input.version) {
      // Nothing is written when etcd's record says all this already (the copy was only behind).
      const updated = await this.store.update(rec.id, (cur) =>
        cur.state === wanted && cur.lease_id === leaseId && cur.version === (input.version || cur.version)
          ? undefined
          : {
              ...cur,
              state: wanted,
              lease_id: leaseId,
              version: input.version || cur.version,
              last_seen_at_ms: at,
              state_changed_at_ms: cur.state === wanted ? cur.state_changed_at_ms : at,
            },
      );
      if (rec.state !== wanted) this.log.info('executor state changed', { id: rec.id, name: rec.name, from: rec.state, to: wanted });
      if (!updated) throw new UnauthenticatedError(`executor ${rec.id} was removed from the registry; register it again (executor register)`);
    }
    return { state: wanted, pingDeadlineSeconds: this.pingDeadlineSeconds };
  }
}
