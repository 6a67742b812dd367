// Sends Heartbeat every ping_interval, says when the controller goes away and comes back, and
// retries sooner (with backoff) while it is unreachable. A refusal (removed executor, wrong
// secret) is fatal: it is reported once and the agent stops.

import type { GridClient } from '../client/client.js';
import { UnauthenticatedError } from '../errors.js';
import { ExecutorState } from '../gen/grid/v1/types.js';
import type { Logger } from '../util/log.js';
import { VERSION } from '../version.js';

export interface HeartbeatDeps {
  client: GridClient;
  executorId: string;
  secret: string;
  intervalMs: number;
  status: () => { runningTasks: number; load: number; draining: boolean };
  onRefused: (err: Error) => void;
  /** Executions the controller says are cancelled that this executor may still be running. */
  onCancelled?: (executionIds: string[]) => void;
  log: Logger;
}

export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private failing = false;
  private backoffMs = 250;
  state: keyof typeof ExecutorState | 'UNKNOWN' = 'UNKNOWN';

  constructor(private readonly d: HeartbeatDeps) {}

  start(): void {
    void this.beat();
  }

  /** Sends one heartbeat now (e.g. to announce draining). */
  async beat(): Promise<void> {
    clearTimeout(this.timer);
    if (this.stopped) return;
    let next = this.d.intervalMs;
    try {
      const s = this.d.status();
      const res = await this.d.client.call(
        this.d.client.executors,
        this.d.client.executors.heartbeat,
        { executorId: this.d.executorId, executorSecret: this.d.secret, version: VERSION, ...s },
        Math.min(this.d.intervalMs, 5_000),
      );
      const state = (ExecutorState[res.state] ?? 'UNKNOWN').replace('EXECUTOR_STATE_', '') as typeof this.state;
      if (this.failing) this.d.log.info('controller reachable again', { state });
      else if (state !== this.state) this.d.log.info('heartbeat accepted', { state });
      this.state = state;
      if (res.cancelledExecutions?.length) this.d.onCancelled?.(res.cancelledExecutions);
      this.failing = false;
      this.backoffMs = 250;
    } catch (err) {
      if (err instanceof UnauthenticatedError) {
        this.d.log.error('the controller refused this executor', { reason: err.message });
        this.stop();
        this.d.onRefused(err);
        return;
      }
      if (!this.failing) this.d.log.warn('heartbeat failed; retrying', { error: (err as Error).message });
      this.failing = true;
      next = Math.min(this.backoffMs, this.d.intervalMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.d.intervalMs);
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), next);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
