// Notices executors whose lease lapsed. Every replica runs this; one of them wins the
// compare-and-swap that marks the executor EXPIRED. On start it watches from the revision of a
// snapshot, and once executors have had one ping deadline to heartbeat (their leases lapsed
// while no controller ran to keep them; a heartbeat takes a new one), it reconciles: live records
// still without an alive key are expired then, not before (Nomad's heartbeat grace after a
// leader election). Nothing is missed between the snapshot and the watch, and when the watch
// resumes after compaction or a lost connection, it reconciles the same way.
// An etcd that stops answering gets the same grace: executor leases lapse while the keep-alives
// their heartbeats asked for could not be written, so no lapse seen while etcd is down, or within
// one ping deadline after it answers again, is the executors' fault. Those that still have no
// alive key at the end of it are expired then.

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
  private storeDown = false;

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
    this.watch = await this.store.watchAlive(
      revision,
      (id) => {
        if (this.inGrace) return; // the reconcile at the end of the grace looks at everyone
        this.expire(id).catch((err) => this.log.warn('could not mark executor expired', { id, error: (err as Error).message }));
      },
      // The watch was read afresh (compaction, a lost connection): deletions in the gap were missed.
      () => {
        if (!this.inGrace) this.reconcileInBackground();
      },
    );
    if (!this.inGrace) return this.reconcile();
    this.log.info('executors have one ping deadline to heartbeat before any is expired', { grace_ms: this.graceMs });
    this.endGraceLater();
  }

  /**
   * Tells the watcher whether etcd answers (readiness probes). While it does not, no lapse is
   * acted on; once it answers again, executors have one ping deadline to heartbeat first.
   */
  storeAnswers(up: boolean): void {
    if (!up) {
      if (this.storeDown) return;
      this.storeDown = true;
      this.inGrace = true;
      clearTimeout(this.graceTimer);
      return;
    }
    if (!this.storeDown) return;
    this.storeDown = false;
    this.log.info('etcd answers again: executors have one ping deadline to heartbeat before any is expired', { grace_ms: this.graceMs });
    this.endGraceLater();
  }

  private endGraceLater(): void {
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.inGrace = false;
      this.reconcileInBackground();
    }, this.graceMs);
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
