// Sends a heartbeat every ping_interval (on the link's stream, else a Heartbeat call each), says
// when the controller goes away and comes back, and retries sooner (with jittered backoff) while
// it is unreachable. A refusal (removed executor, wrong secret) is fatal: it is reported once and the
// agent stops.

import { UnauthenticatedError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import type { ControllerLink, HeartbeatStatus, TaskStopOrder } from './link.js';

export interface HeartbeatDeps {
  link: ControllerLink;
  intervalMs: number;
  status: () => Omit<HeartbeatStatus, 'version'>;
  onRefused: (err: Error) => void;
  /** Executions the controller says are cancelled that this executor may still be running. */
  onCancelled?: (executionIds: string[]) => void;
  /** Tasks it runs that are to stop (a cancel it missed, a claim another attempt took over). */
  onStop?: (orders: TaskStopOrder[]) => void;
  /** Told of each heartbeat sent: accepted, or not (refused or unreachable). */
  onResult?: (accepted: boolean) => void;
  log: Logger;
}

export class Heartbeat {
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private failing = false;
  private backoffMs = 250;
  state = 'UNKNOWN';

  constructor(private readonly d: HeartbeatDeps) {}

  start(): void {
    void this.beat();
  }

  /** Whether the last heartbeat was accepted. */
  get reachable(): boolean {
    return this.state !== 'UNKNOWN' && !this.failing && !this.stopped;
  }

  /** Sends one heartbeat now (e.g. to announce draining). */
  async beat(): Promise<void> {
    clearTimeout(this.timer);
    if (this.stopped) return;
    let next = this.d.intervalMs;
    const timeoutMs = Math.min(this.d.intervalMs, 5_000);
    const sentAt = performance.now();
    try {
      const res = await this.d.link.heartbeat({ version: VERSION, ...this.d.status() }, timeoutMs);
      const state = res.state;
      if (this.failing) this.d.log.info('controller reachable again', { state });
      else if (state !== this.state) this.d.log.info('heartbeat accepted', { state });
      this.state = state;
      if (res.cancelledExecutions.length) this.d.onCancelled?.(res.cancelledExecutions);
      if (res.stop.length) this.d.onStop?.(res.stop);
      this.failing = false;
      this.backoffMs = 250;
      this.d.onResult?.(true);
    } catch (err) {
      this.d.onResult?.(false);
      if (err instanceof UnauthenticatedError) {
        this.d.log.error('the controller refused this executor', { reason: err.message });
        this.stop();
        this.d.onRefused(err);
        return;
      }
      if (!this.failing) this.d.log.warn('heartbeat failed; retrying', { error: (err as Error).message });
      this.failing = true;
      const waited = performance.now() - sentAt;
      if (waited >= timeoutMs * 0.9) {
        // No answer in the whole timeout: the controller is there but slow (overloaded, or etcd
        // behind it), and it may still work through this heartbeat. Retrying sooner than the
        // interval would only add to its load; the next beat keeps the usual cadence.
        next = Math.max(this.backoffMs, this.d.intervalMs - waited);
      } else {
        // Jittered: executors that failed together (a controller restarting) do not all come
        // back in the same instant.
        next = Math.min(this.backoffMs, this.d.intervalMs) * (0.5 + Math.random() / 2);
        this.backoffMs = Math.min(this.backoffMs * 2, this.d.intervalMs);
      }
    }
    if (!this.stopped) this.timer = setTimeout(() => void this.beat(), next);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.d.link.closeHeartbeats?.();
  }
}
