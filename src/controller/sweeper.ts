// Periodic care of active executions, on every replica (all of it is CAS and idempotent):
// re-publish requests stuck in QUEUED (a crash between the etcd write and the publish), time
// out executions past their deadline, skip tasks that waited longer than --wait-offline. Also
// applies executor expiry to the executions that had tasks on the expired executor.

import type { ExecutorRecord } from '../domain/executor.js';
import { executorExpired, expireWaits, stopExecution } from '../domain/execution-rules.js';
import type { EtcdExecutionStore } from '../store/etcd-executions.js';
import type { Logger } from '../util/log.js';
import type { ExecutionService } from './executions.js';

/** A request still QUEUED this long after it was accepted (or last re-published) is published again. */
const QUEUED_GRACE_MS = 15_000;

export class Sweeper {
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;
  private stopped = false;
  /** When this replica last re-published each stuck request (a backlog must not become a storm). */
  private readonly republished = new Map<string, number>();

  constructor(
    private readonly d: { store: EtcdExecutionStore; executions: ExecutionService; log: Logger; intervalMs?: number; now?: () => number },
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
    for (const a of await this.d.store.active()) {
      if (a.deadline_ms && now >= a.deadline_ms) {
        const { changed } = await this.d.store.update(a.id, (x) =>
          stopExecution(x, 'TIMED_OUT', `timed out after ${x.timeout_seconds}s`, this.now()),
        );
        if (changed) {
          this.d.executions.broadcastStop(a.id, 'timed_out');
          this.d.log.info('execution timed out', { id: a.id });
        }
        continue;
      }
      if (a.wait_until_ms && now >= a.wait_until_ms) {
        await this.d.store.update(a.id, (x) => expireWaits(x, this.now()));
      }
      if (a.state === 'QUEUED' && now - Math.max(a.created_at_ms, this.republished.get(a.id) ?? 0) > QUEUED_GRACE_MS) {
        this.republished.set(a.id, now);
        await this.d.executions.publishRequest(a.id);
        this.d.log.info('re-published a request stuck in QUEUED', { id: a.id });
      }
      seen.add(a.id);
    }
    for (const id of this.republished.keys()) if (!seen.has(id)) this.republished.delete(id);
  }

  /** Expiry listener: the executor's running tasks become LOST (pool tasks go back to the pool). */
  async executorExpired(e: ExecutorRecord): Promise<void> {
    for (const a of await this.d.store.active()) {
      if (!a.executors.includes(e.id)) continue;
      const { changed } = await this.d.store.update(a.id, (x) => executorExpired(x, e.id, e.name, this.now()));
      if (changed) this.d.log.info('tasks of an expired executor updated', { execution: a.id, executor: e.name });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
