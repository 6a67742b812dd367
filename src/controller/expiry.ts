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
// A controller that runs late (its event loop seconds behind: overloaded, or starved of CPU)
// reads heartbeats and lapses late alike: an executor whose beats wait in this process's own
// queue is not silent. Lapses seen while it is late wait until it runs on time again, and are
// then looked at with the heartbeats it has caught up on (see the next paragraph).
// A lease can also lapse while the executor's heartbeats arrive: the controller took them but
// could not write their keep-alives in time (an overloaded controller or etcd). Such an executor
// is alive by the rule itself, a heartbeat within the ping deadline, so this replica does not
// expire an executor it took a heartbeat from within the deadline: it looks again once the
// deadline after that heartbeat has passed (by then a later heartbeat has taken a new lease, or
// none came). Another replica, which took none of its heartbeats, still can.

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
  /** Whether this controller runs late (runsLate): lapses wait meanwhile. */
  private late = false;
  /** Since when etcd has not answered (ms), or undefined while it answers. */
  private storeDownSince?: number;
  /** Executors whose lapse came within the deadline of a heartbeat: when each is looked at again. */
  private readonly rechecks = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly store: ExecutorStore,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
    /** How long after start nothing is expired (the ping deadline). */
    private readonly graceMs = 0,
    /** When this replica last took a heartbeat of the executor (ms), if it did. */
    private readonly lastSeen: (id: string) => number | undefined = () => undefined,
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
        if (this.waiting()) this.deferred.add(id);
        else this.expireInBackground(id);
      },
      // The watch was read afresh (compaction, a lost connection): deletions in the gap were missed.
      () => {
        if (this.waiting()) this.reconcileAtEnd = true;
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

  /**
   * Tells the watcher whether this controller runs late (LoopLag). While it does, lapses wait;
   * once it runs on time again, they are looked at (unless a grace is in force, which ends later).
   */
  runsLate(late: boolean): void {
    if (late === this.late) return;
    this.late = late;
    if (!late && !this.inGrace) this.actOnDeferred();
  }

  /** Whether a lapse seen now waits: in a grace, or while this controller runs late. */
  private waiting(): boolean {
    return this.inGrace || this.late;
  }

  private endGraceAt(until: number): void {
    clearTimeout(this.graceTimer);
    this.graceUntil = until;
    this.graceTimer = setTimeout(() => this.endGrace(), Math.max(0, until - this.now()));
  }

  private endGrace(): void {
    this.inGrace = false;
    this.graceUntil = 0;
    if (!this.late) this.actOnDeferred();
  }

  /** The lapses that waited, or every executor when a watch was read afresh meanwhile. */
  private actOnDeferred(): void {
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
    const seen = this.lastSeen(id);
    if (this.graceMs > 0 && seen !== undefined && this.now() - seen < this.graceMs) {
      this.recheckAt(id, seen + this.graceMs);
      return false;
    }
    const next = await this.store.expire(id, this.now());
    if (!next) return false;
    this.log.warn('executor expired: no heartbeat within the ping deadline', { id, name: next.name });
    for (const fn of this.listeners) await fn(next);
    return true;
  }

  /** Looks at the executor again at `at`: expired then unless it has a lease again (or beat since). */
  private recheckAt(id: string, at: number): void {
    if (this.rechecks.has(id) || this.stopped) return;
    this.log.debug('lease lapsed within the ping deadline of a heartbeat taken here: not expired yet', { id, recheck_in_ms: at - this.now() });
    const timer = setTimeout(() => {
      this.rechecks.delete(id);
      if (this.stopped) return;
      if (this.waiting()) {
        this.deferred.add(id);
        return;
      }
      this.store
        .isAlive(id)
        .then((alive) => (alive ? false : this.expire(id)))
        .catch((err) => this.log.warn('could not mark executor expired', { id, error: (err as Error).message }));
    }, Math.max(0, at - this.now()) + 1);
    timer.unref?.();
    this.rechecks.set(id, timer);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.rechecks.values()) clearTimeout(t);
    this.rechecks.clear();
    clearTimeout(this.graceTimer);
    await this.watch?.close();
  }
}
