// Periodic care of active executions, on every replica (all of it is CAS and idempotent):
// send again the job messages of a replica that died between recording an execution and sending
// them, re-publish requests stuck in QUEUED, time
// out executions past their deadline, skip tasks that waited longer than --wait-offline. Also
// applies executor expiry to the executions that had tasks on the expired executor — when told
// (executorExpired), and by itself for an EXPIRED executor whose tasks are still open (the
// replica that marked it EXPIRED died, or failed, before it got to them).

import type { Task } from '../domain/execution.js';
import { groupsOf, isLive, type ExecutorRecord } from '../domain/executor.js';
import { executorExpired, expireWaits, stopExecution } from '../domain/execution-rules.js';
import type { OnLost } from '../domain/job.js';
import type { ActiveEntry, ExecutionStore, ExecutorStore } from '../store/store.js';
import { Batcher } from '../util/batcher.js';
import type { Logger } from '../util/log.js';
import type { ExecutionService } from './executions.js';
import type { ControllerInstances } from './instances.js';
import type { JobPublisher } from './job-publisher.js';

/** A request still QUEUED this long after it was accepted (or last re-published) is published again. */
const QUEUED_GRACE_MS = 15_000;
/**
 * Tasks released by a controller process that is gone are sent again (it may have died between
 * recording the release and sending), then again every RESEND_AFTER_MS while they have not
 * started; records that do not say who released them, RESEND_AFTER_MS after the release. Whatever
 * their age: a copy of a message that did go out is harmless, since only one claim of a task wins.
 */
const RESEND_AFTER_MS = 15_000;
/** How often the sweep looks for open tasks of executors that are already EXPIRED. */
const EXPIRED_RECONCILE_MS = 5_000;

export class Sweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** When this replica last re-published each stuck request (a backlog must not become a storm). */
  private readonly republished = new Map<string, number>();
  private lastReconcileMs = 0;

  constructor(
    private readonly d: {
      store: Pick<ExecutionStore, 'active' | 'get' | 'getShared' | 'update' | 'updateMany'>;
      executions: Pick<ExecutionService, 'retryUnsent' | 'broadcastStop' | 'publishRequest'>;
      /** When given, the sweep also ends open tasks of executors that are already EXPIRED. */
      executors?: Pick<ExecutorStore, 'get' | 'getFast' | 'all'>;
      publisher?: JobPublisher;
      /** Which controller processes are alive (see Execution.dispatcher). */
      instances?: Pick<ControllerInstances, 'live'>;
      log: Logger;
      intervalMs?: number;
      now?: () => number;
    },
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.sweep()
        .catch((err) => this.d.log.warn('sweep failed', { error: (err as Error).message }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.d.intervalMs ?? 1_000);
        });
    };
    tick();
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  async sweep(): Promise<void> {
    const now = this.now();
    const seen = new Set<string>();
    await this.d.executions.retryUnsent().catch((err: Error) => this.d.log.warn('could not send job messages yet', { error: err.message }));
    const active = await this.d.store.active();
    // Released tasks that have not started are sent again only when the process that released
    // them is gone (it would have sent them, or retries itself): one read of the live ones.
    let live: Set<string> | undefined;
    const orphaned = async (a: ActiveEntry): Promise<boolean> => {
      if (!a.dispatcher || !this.d.instances) return true;
      live ??= await this.d.instances.live();
      return !live.has(a.dispatcher);
    };
    for (const a of active) {
      if (a.deadline_ms && now >= a.deadline_ms) {
        const { changed, execution } = await this.d.store.update(a.id, (x) =>
          stopExecution(x, 'TIMED_OUT', `timed out after ${x.timeout_seconds}s`, this.now()),
        );
        if (changed) {
          await this.d.executions.broadcastStop(execution, 'timed_out');
          this.d.log.info('execution timed out', { id: a.id });
        }
        continue;
      }
      if (a.wait_until_ms && now >= a.wait_until_ms) {
        const offline = await this.offline();
        await this.d.store.update(a.id, (x) => expireWaits(x, this.now(), offline));
      }
      if (a.state === 'QUEUED' && now - Math.max(a.created_at_ms, this.republished.get(a.id) ?? 0) > QUEUED_GRACE_MS) {
        this.republished.set(a.id, now);
        await this.d.executions.publishRequest(a.id);
        this.d.log.info('re-published a request stuck in QUEUED', { id: a.id });
      }
      if (this.d.publisher && a.released_at_ms) {
        const last = this.republished.get(a.id);
        // A known dispatcher that is gone: at once. Otherwise after a grace period.
        const due = a.dispatcher ? last === undefined || now - last > RESEND_AFTER_MS : now - Math.max(a.released_at_ms, last ?? 0) > RESEND_AFTER_MS;
        if (due && (await orphaned(a))) {
          this.republished.set(a.id, now);
          const x = (await this.d.store.get(a.id))?.value;
          if (x) await this.d.publisher.resend(x);
        }
      }
      seen.add(a.id);
    }
    for (const id of this.republished.keys()) if (!seen.has(id)) this.republished.delete(id);
    if (this.d.executors && now - this.lastReconcileMs >= EXPIRED_RECONCILE_MS) {
      this.lastReconcileMs = now;
      await this.reconcileExpired(active, this.d.executors);
    }
  }

  /**
   * The replica that wins the CAS marking an executor EXPIRED applies the expiry to its tasks
   * right after, in memory (executorExpired below). If it dies in between, or that update fails,
   * no one else does: the record is EXPIRED already, so no other replica's CAS succeeds, and a
   * restart reconciles only live records. A fan-out task of that executor then stayed RUNNING
   * forever. Only executions created before the expiry are touched (later ones were planned
   * around the executor), and the executor is read again just before each update.
   */
  private async reconcileExpired(active: ActiveEntry[], executors: Pick<ExecutorStore, 'get' | 'getFast'>): Promise<void> {
    const expired = new Map<string, ExecutorRecord>();
    // From memory where the store keeps a copy: a fan-out lists thousands of executors.
    for (const id of new Set(active.flatMap((a) => a.executors))) {
      const e = await executors.getFast(id);
      if (e?.state === 'EXPIRED') expired.set(id, e);
    }
    if (expired.size === 0) return;
    for (const a of active) {
      const due: ExecutorRecord[] = [];
      for (const id of a.executors) {
        const e = expired.get(id);
        if (!e || a.created_at_ms > e.state_changed_at_ms) continue;
        const again = await executors.get(id);
        if (again?.state !== 'EXPIRED' || again.state_changed_at_ms !== e.state_changed_at_ms) continue;
        due.push(e);
      }
      if (due.length === 0) continue;
      const onLost = await this.onLostOf(a.id);
      // All of them in one write: each alone would rewrite the whole record.
      const { changed } = await this.d.store.update(a.id, (x) => due.reduce((c, e) => executorExpired(x, e.id, e.name, this.now(), 'expired', onLost) || c, false));
      if (changed) this.d.log.warn('tasks of executors that had expired were still open: applied the expiry now', { execution: a.id, executors: due.map((e) => e.name).join(',') });
    }
  }

  /** Whether a pending task's executor (or every member of its pool) is offline now. */
  private async offline(): Promise<(t: Task) => boolean> {
    if (!this.d.executors) return () => true;
    const live = (await this.d.executors.all()).filter((e) => isLive(e.state));
    const ids = new Set(live.map((e) => e.id));
    const groups = new Set(live.flatMap((e) => groupsOf(e)));
    return (t) => (t.pool ? !groups.has(t.pool) : !ids.has(t.executor_id));
  }

  /**
   * The on_lost of an execution's definition. When it cannot be read, `fail`: a task whose
   * definition is gone cannot run again anyway, and an at-most-once job must never be retried.
   */
  private async onLostOf(id: string): Promise<OnLost> {
    if (!this.d.publisher) return 'retry';
    try {
      const x = (await this.d.store.getShared(id))?.value;
      return x ? ((await this.d.publisher.definitionOf(x)).on_lost ?? 'retry') : 'fail';
    } catch {
      return 'fail';
    }
  }

  /**
   * Expiry listener: the executor's running tasks end per on_lost (claimLost); pending ones are
   * SKIPPED unless they wait. Resolves once that is written.
   */
  executorExpired(e: ExecutorRecord, how: 'expired' | 'was removed' = 'expired'): Promise<void> {
    return this.expiries.add({ e, how });
  }

  /**
   * Expiries group-committed: those told while a batch is being written go together in the
   * next, one write per execution for all of them. Hundreds of executors of one big fan-out can
   * expire at once (a network split); one at a time, each read, copied and rewrote its whole
   * record, and their writes lost their compares to each other.
   */
  private readonly expiries = new Batcher<{ e: ExecutorRecord; how: 'expired' | 'was removed' }, void>({
    max: 1_000,
    run: async (batch) => {
      const byExecution = new Map<string, Array<{ e: ExecutorRecord; how: 'expired' | 'was removed' }>>();
      for (const a of await this.d.store.active()) {
        const open = new Set(a.executors);
        const mine = batch.filter((p) => open.has(p.item.e.id)).map((p) => p.item);
        if (mine.length) byExecution.set(a.id, mine);
      }
      const onLost = new Map<string, OnLost>();
      for (const id of byExecution.keys()) onLost.set(id, await this.onLostOf(id));
      const results = await this.d.store.updateMany([...byExecution.keys()], (x) => {
        let changed = false;
        for (const { e, how } of byExecution.get(x.id) ?? []) changed = executorExpired(x, e.id, e.name, this.now(), how, onLost.get(x.id) ?? 'fail') || changed;
        return changed;
      });
      for (const [id, r] of results) {
        if (!r.changed) continue;
        const names = byExecution.get(id)!.map(({ e }) => e.name);
        this.d.log.info('tasks of expired executors updated', { execution: id, executors: names.length, names: names.slice(0, 10).join(',') + (names.length > 10 ? ',…' : '') });
      }
      for (const p of batch) p.resolve();
    },
  });

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
