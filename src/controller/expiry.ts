// Notices executors whose lease lapsed. Every replica runs this; one of them wins the
// compare-and-swap that marks the executor EXPIRED. On start it watches from the revision of a
// snapshot, and once executors have had one ping deadline to heartbeat (their leases lapsed
// while no controller ran to keep them; a heartbeat takes a new one), it reconciles: live records
// still without an alive key are expired then, not before (Nomad's heartbeat grace after a
// leader election). Nothing is missed between the snapshot and the watch, and when the watch
// resumes after compaction or a lost connection, it reconciles the same way.
// An etcd that stops answering long enough gets the same grace: executor leases lapse while the
// keep-alives their heartbeats asked for cannot be written. A lapse seen while etcd is down waits;
// when it answers again after an outage of a third of the ping deadline or more (a healthy
// executor, beating every third of it, keeps at least two thirds of its lease), executors have
// one ping deadline to heartbeat, and those whose alive key is still gone are expired then. After
// a shorter outage, the lapses that waited are acted on at once.

import type { ExecutorRecord } from '../domain/executor.js';
import { isLive } from '../domain/executor.js';
import type { AliveWatch, ExecutorStore } from '../store/store.js';
import type { Logger } from '../util/log.js';

export type ExpiredListener = (executor: ExecutorRecord) => void | Promise<void>;

export class ExpiryWatcher {
  private watch?: AliveWatch;
  private readonly listeners: ExpiredListener[] = [];
  private graceTimer?: NodeJS.Timeout;
  private inGrace = false;
  /** When the grace in force ends (ms); 0 when none is. */
  private graceUntil = 0;
  /** Lapses seen during a grace, acted on at its end. */
  private readonly deferred = new Set<string>();
  /** Whether the end of the grace must look at every executor (after start, or a watch read afresh). */
  private reconcileAtEnd = false;
  /** Since when etcd has not answered (ms), or undefined while it answers. */
  private storeDownSince?: number;

  constructor(
    private readonly store: ExecutorStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** How long after start nothing is expired (the ping deadline). */
    private readonly graceMs = 0,
  ) {}

  /** Called after an executor has been marked EXPIRED by this replica (e.g. to mark tasks LOST). */
  onExpired(fn: ExpiredListener): void {
    this.listeners.push(fn);
  }

  async start(): Promise<void> {
    const { revision } = await this.store.list();
    this.inGrace = this.graceMs > 0;
    this.reconcileAtEnd = this.inGrace;
    this.watch = await this.store.watchAlive(
      revision,
      (id) => {
        if (this.inGrace) this.deferred.add(id);
        else this.expireInBackground(id);
      },
      // The watch was read afresh (compaction, a lost connection): deletions in the gap were missed.
      () => {
        if (this.inGrace) this.reconcileAtEnd = true;
        else this.reconcileInBackground();
      },
    );
    if (!this.inGrace) return this.reconcile();
    this.log.info('executors have one ping deadline to heartbeat before any is expired', { grace_ms: this.graceMs });
    this.endGraceAt(this.now() + this.graceMs);
  }

  /**
   * Tells the watcher whether etcd answers (readiness probes). While it does not, lapses wait;
   * once it answers again after a long outage, executors have one ping deadline to heartbeat.
   */
  storeAnswers(up: boolean): void {
    const at = this.now();
    if (!up) {
      if (this.storeDownSince !== undefined) return;
      this.storeDownSince = at;
      this.inGrace = true;
      clearTimeout(this.graceTimer);
      return;
    }
    if (this.storeDownSince === undefined) return;
    const outageMs = at - this.storeDownSince;
    this.storeDownSince = undefined;
    if (outageMs >= this.graceMs / 3) {
      this.log.info('etcd answers again: executors have one ping deadline to heartbeat before any is expired', { outage_ms: outageMs, grace_ms: this.graceMs });
      this.endGraceAt(at + this.graceMs);
    } else {
      this.endGraceAt(Math.max(at, this.graceUntil));
    }
  }

  private endGraceAt(until: number): void {
    clearTimeout(this.graceTimer);
    this.graceUntil = until;
    this.graceTimer = setTimeout(() => this.endGrace(), Math.max(0, until - this.now()));
  }

  private endGrace(): void {
    this.inGrace = false;
    this.graceUntil = 0;
    const ids = [...this.deferred];
    this.deferred.clear();
    if (this.reconcileAtEnd) {
      this.reconcileAtEnd = false;
      this.reconcileInBackground();
    } else {
      for (const id of ids) this.expireInBackground(id);
    }
  }

  private expireInBackground(id: string): void {
    this.expire(id).catch((err) => this.log.warn('could not mark executor expired', { id, error: (err as Error).message }));
  }

  private reconcileInBackground(): void {
    this.reconcile().catch((err) => this.log.warn('could not look for expired executors', { error: (err as Error).message }));
  }

  /** Expires every live record without an alive key. */
  private async reconcile(): Promise<void> {
    const { executors } = await this.store.list();
    for (const e of executors) {
      if (isLive(e.state) && !(await this.store.isAlive(e.id))) await this.expire(e.id);
    }
  }

  /**
   * Marks the executor EXPIRED if it is still live and still has no alive key (checked with
   * the write, so a heartbeat that re-took a lease meanwhile wins), and tells the listeners.
   */
  async expire(id: string): Promise<boolean> {
    const next = await this.store.expire(id, this.now());
    if (!next) return false;
    this.log.warn('executor expired: no heartbeat within the ping deadline', { id, name: next.name });
    for (const fn of this.listeners) await fn(next);
    return true;
  }

  async stop(): Promise<void> {
    clearTimeout(this.graceTimer);
    await this.watch?.close();
  }
}
