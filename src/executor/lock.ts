// Fleet-wide locks for serialized jobs, as the executor sees them: the controller keeps them in
// etcd (src/controller/locks.ts) and decides which lock a task takes from its definition; the
// executor asks, and the controller holds the call until the task may take the lock (or a few
// seconds have passed: then it asks again at once). Holding it, the executor keeps it alive, and
// stops counting on it before its lease could lapse. Executors have no rights on any store.

import { setTimeout as delay } from 'node:timers/promises';
import type { GridClient } from '../client/client.js';
import type { LockRequest } from '../gen/grid/v1/executor.js';
import { GridError } from '../errors.js';
import { seconds } from '../runners/runner.js';
import type { Logger } from '../util/log.js';

/** How long the controller may hold one AcquireLock while the lock is taken (a long poll). */
const WAIT_MS = 5_000;
/** Deadline of a call, beyond the time the controller may hold it. */
const CALL_MS = 10_000;
/** After a call that failed (the controller unreachable, …), the next try. */
const RETRY_MS = 1_000;
/** A controller that answers a waiting call at once (one that does not hold it) is asked no more often than this. */
const MIN_ASK_MS = 250;

export interface HeldLock {
  readonly name: string;
  /** The fencing token: the etcd revision that created the lock, strictly increasing. */
  readonly token: number;
  /** Why the lock was lost ("lost lock NAME (token N): …"), once it was. */
  readonly lost: string | undefined;
  /** Calls `cb` once, when the lock is lost (at once if it already was); never after release(). */
  onLost(cb: (why: string) => void): void;
  release(): Promise<void>;
}

export interface AcquireOptions {
  executionId: string;
  taskKey: string;
  signal: AbortSignal;
  /** Called once, when the task has to wait, with how many tasks are ahead of it. */
  onWaiting?: (ahead: number, holder: string) => void | Promise<void>;
}

interface FleetLocksOptions {
  client: GridClient;
  executorId: string;
  executorSecret: string;
  log: Logger;
  /** How long the controller may hold one AcquireLock (default 5 s). */
  waitMs?: number;
}

type TaskRef = { executionId: string; taskKey: string };

export class FleetLocks {
  constructor(private readonly o: FleetLocksOptions) {}

  private req(o: TaskRef, token = 0, waitMs = 0): LockRequest {
    return { executorId: this.o.executorId, executorSecret: this.o.executorSecret, executionId: o.executionId, taskKey: o.taskKey, token, waitMs };
  }

  /**
   * Waits its turn and takes the lock; undefined if `signal` aborted first. A call that fails for
   * a reason that may pass (the controller unreachable) is tried again: the task keeps its ticket,
   * so it keeps its place in line even when its entry lapsed meanwhile.
   */
  async acquire(o: AcquireOptions): Promise<HeldLock | undefined> {
    const c = this.o.client;
    const waitMs = this.o.waitMs ?? WAIT_MS;
    let reported = false;
    let failing = false;
    try {
      while (!o.signal.aborted) {
        const sentAt = performance.now();
        // The first answer comes at once, so that the task can say it waits and for whom.
        const wait = reported ? waitMs : 0;
        let r;
        try {
          r = await c.call(c.executors, c.executors.acquireLock, this.req(o, 0, wait), wait + CALL_MS, o.signal);
        } catch (err) {
          if (o.signal.aborted) break;
          if (!(err instanceof GridError && err.retryable)) throw err;
          if (!failing) this.o.log.warn('could not ask for the serialize lock; asking again', { error: err.message, retry_in_ms: RETRY_MS });
          failing = true;
          await delay(RETRY_MS, undefined, { signal: o.signal }).catch(() => {});
          continue;
        }
        failing = false;
        if (r.acquired) {
          const ttlMs = r.ttlMs || 30_000;
          const grant = { sentAt, ttlMs, remainingMs: r.remainingMs || ttlMs };
          return new Holding({ client: c, log: this.o.log, ref: o, req: (token) => this.req(o, token), leave: (token) => this.leave(o, token) }, r.lock, r.token, grant);
        }
        if (!reported) {
          reported = true;
          await o.onWaiting?.(r.ahead, r.holder);
          continue;
        }
        // The controller held the call until its wait ran out: ask again at once (which also keeps the place).
        const spent = performance.now() - sentAt;
        if (spent < MIN_ASK_MS) await delay(MIN_ASK_MS - spent, undefined, { signal: o.signal }).catch(() => {});
      }
    } catch (err) {
      await this.leave(o, 0);
      throw err;
    }
    await this.leave(o, 0);
    return undefined;
  }

  private async leave(o: TaskRef, token: number): Promise<void> {
    const c = this.o.client;
    await c.call(c.executors, c.executors.releaseLock, this.req(o, token)).catch((err: Error) => {
      this.o.log.warn('could not give the serialize lock back; it lapses after its TTL', { error: err.message });
    });
  }
}

/** When the controller last vouched for the lease: sent at `sentAt` (performance.now()), good for `remainingMs` from then. */
interface Grant {
  sentAt: number;
  ttlMs: number;
  remainingMs: number;
}

/**
 * A lock this executor holds. It is refreshed every sixth of its TTL and, after a refresh that
 * failed, every second until the lease could lapse. The lease lasts at least `remainingMs` of
 * the last good answer from when that refresh was sent, counted on this process's monotonic
 * clock (no other machine's clock is read). The lock is lost a third of the TTL before then, so
 * that the task is stopped (SIGTERM, SIGKILL after the runner's grace) before another task can
 * take the lock, whatever the difference between the two machines' clock rates; or as soon as
 * the controller says it is no longer held.
 */
class Holding implements HeldLock {
  lost: string | undefined;
  private readonly listeners: Array<(why: string) => void> = [];
  private ttlMs = 0;
  /** performance.now() past which the lock counts as lost. */
  private lostAt = 0;
  private lastGood = 0;
  private failure: string | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;
  private lostTimer: NodeJS.Timeout | undefined;
  private released = false;
  private readonly log: Logger;

  constructor(
    private readonly o: { client: GridClient; log: Logger; ref: TaskRef; req: (token: number) => LockRequest; leave: (token: number) => Promise<void> },
    readonly name: string,
    readonly token: number,
    grant: Grant,
  ) {
    this.log = o.log.with({ lock: name, fencing_token: token, execution: o.ref.executionId, task: o.ref.taskKey });
    this.renewed(grant);
  }

  onLost(cb: (why: string) => void): void {
    if (this.released) return;
    if (this.lost) queueMicrotask(() => cb(this.lost!));
    else this.listeners.push(cb);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.stopTimers();
    await this.o.leave(this.lost ? 0 : this.token);
  }

  private renewed(g: Grant): void {
    this.ttlMs = g.ttlMs;
    this.lastGood = g.sentAt;
    this.lostAt = g.sentAt + g.remainingMs - g.ttlMs / 3;
    clearTimeout(this.lostTimer);
    this.lostTimer = setTimeout(() => this.lose(this.unrefreshed()), Math.max(0, this.lostAt - performance.now()));
    this.refreshIn(g.ttlMs / 6);
  }

  private refreshIn(ms: number): void {
    clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => void this.refresh(), Math.max(100, ms));
  }

  private async refresh(): Promise<void> {
    if (this.released || this.lost) return;
    const c = this.o.client;
    const sentAt = performance.now();
    try {
      // No answer is worth waiting for past the moment the lock counts as lost.
      const r = await c.call(c.executors, c.executors.refreshLock, this.o.req(this.token), Math.max(100, Math.min(CALL_MS, this.lostAt - sentAt)));
      if (this.released || this.lost) return;
      if (!r.held) return this.lose('the controller says it is no longer held (its lease lapsed; another task may hold it now)');
      if (this.failure !== undefined) this.log.info('the serialize lock is refreshed again', { since_last_refresh: seconds(sentAt - this.lastGood) });
      this.failure = undefined;
      const ttlMs = r.ttlMs || this.ttlMs;
      this.renewed({ sentAt, ttlMs, remainingMs: r.remainingMs || ttlMs });
    } catch (err) {
      if (this.released || this.lost) return;
      if (this.failure === undefined) {
        this.log.warn('could not refresh the serialize lock; trying again until its lease could lapse', {
          error: (err as Error).message,
          lost_in: seconds(Math.max(0, this.lostAt - performance.now())),
        });
      }
      this.failure = (err as Error).message;
      this.refreshIn(Math.min(RETRY_MS, this.ttlMs / 10));
    }
  }

  private unrefreshed(): string {
    const since = seconds(Math.round((performance.now() - this.lastGood) / 100) * 100);
    return `no refresh succeeded for ${since}${this.failure ? ` (${this.failure.replace(/\.$/, '')})` : ''}; its lease of ${seconds(this.ttlMs)} could lapse`;
  }

  private lose(why: string): void {
    if (this.lost || this.released) return;
    this.stopTimers();
    this.lost = `lost lock ${this.name} (token ${this.token}): ${why}`;
    this.log.warn('lost the serialize lock', { reason: why });
    for (const cb of this.listeners.splice(0)) cb(this.lost);
  }

  private stopTimers(): void {
    clearTimeout(this.refreshTimer);
    clearTimeout(this.lostTimer);
  }
}
