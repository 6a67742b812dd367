// Fleet-wide locks for serialized jobs, as the executor sees them: the controller keeps them in
// etcd (src/controller/locks.ts) and decides which lock a task takes from its definition; the
// executor only asks, in turn, until its task is first in line and the lock is free, then keeps
// it alive and gives it back. Executors have no rights on any store of their own.

import { setTimeout as delay } from 'node:timers/promises';
import type { GridClient } from '../client/client.js';
import type { Logger } from '../util/log.js';

const POLL_MS = 250;

export interface HeldLock {
  /** The fencing token: the etcd revision that created the lock, strictly increasing. */
  token: number;
  /** Set when a refresh found the lock no longer held by this task (it had lapsed). */
  lost: boolean;
  release(): Promise<void>;
}

export interface AcquireOptions {
  executionId: string;
  taskKey: string;
  signal: AbortSignal;
  /** Called once, when the task has to wait, with how many tasks are ahead of it. */
  onWaiting?: (ahead: number, holder: string) => void | Promise<void>;
}

export class FleetLocks {
  constructor(
    private readonly o: { client: GridClient; executorId: string; executorSecret: string; log: Logger },
  ) {}

  private req(o: { executionId: string; taskKey: string }, token = 0) {
    return { executorId: this.o.executorId, executorSecret: this.o.executorSecret, executionId: o.executionId, taskKey: o.taskKey, token, waitMs: 0 };
  }

  /** Waits its turn and takes the lock; undefined if `signal` aborted first. */
  async acquire(o: AcquireOptions): Promise<HeldLock | undefined> {
    const c = this.o.client;
    let reported = false;
    try {
      while (!o.signal.aborted) {
        const r = await c.call(c.executors, c.executors.acquireLock, this.req(o));
        if (r.acquired) return this.held(o, r.lock, r.token, r.ttlMs);
        if (!reported && o.onWaiting) {
          reported = true;
          await o.onWaiting(r.ahead, r.holder);
        }
        await delay(POLL_MS, undefined, { signal: o.signal }).catch(() => {});
      }
    } catch (err) {
      await this.leave(o, 0);
      throw err;
    }
    await this.leave(o, 0);
    return undefined;
  }

  private async leave(o: { executionId: string; taskKey: string }, token: number): Promise<void> {
    const c = this.o.client;
    await c.call(c.executors, c.executors.releaseLock, this.req(o, token)).catch((err: Error) => {
      this.o.log.warn('could not give the serialize lock back; it lapses after its TTL', { error: err.message });
    });
  }

  private held(o: { executionId: string; taskKey: string }, name: string, token: number, ttlMs: number): HeldLock {
    const c = this.o.client;
    const lock: HeldLock = {
      token,
      lost: false,
      release: async () => {
        clearInterval(refresh);
        await this.leave(o, lock.lost ? 0 : token);
      },
    };
    const refresh = setInterval(() => {
      c.call(c.executors, c.executors.refreshLock, this.req(o, token)).then(
        (r) => {
          if (r.held || lock.lost) return;
          lock.lost = true;
          clearInterval(refresh);
          this.o.log.warn('lost the serialize lock: it lapsed and may be held by another task now', { lock: name, token });
        },
        (err: Error) => this.o.log.warn('could not refresh the serialize lock; trying again', { lock: name, token, error: err.message }),
      );
    }, Math.max(500, ttlMs / 3));
    return lock;
  }
}
