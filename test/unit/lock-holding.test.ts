// A held serialize lock on the executor (FleetLocks), with a stand-in controller and fake timers:
// failed refreshes are retried until a third of the lease may be left, counted on the executor's
// own monotonic clock from when the last good refresh was sent; then, or when the controller says
// it is no longer held, the lock is lost, once. A refresh that succeeds in time keeps it.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { GridClient } from '../../src/client/client.js';
import { UnavailableError } from '../../src/errors.js';
import { FleetLocks, type HeldLock } from '../../src/executor/lock.js';
import type { LockRequest } from '../../src/gen/grid/v1/executor.js';
import { createLogger } from '../../src/util/log.js';

const TTL_MS = 9_000;
type Answer = (req: LockRequest) => Promise<unknown>;

let refresh: Answer;
let calls: Array<{ method: string; req: LockRequest; at: number }>;

function standIn(): GridClient {
  const executors = { acquireLock: 'acquire', refreshLock: 'refresh', releaseLock: 'release' };
  const answers: Record<string, Answer> = {
    acquire: async () => ({ acquired: true, token: 5, ahead: 0, holder: 'me', lock: 'L', ttlMs: TTL_MS, remainingMs: TTL_MS }),
    refresh: (req) => refresh(req),
    release: async () => ({}),
  };
  return {
    executors,
    call: async (_stub: object, method: string, req: LockRequest) => {
      calls.push({ method, req, at: performance.now() });
      return answers[method]!(req);
    },
  } as unknown as GridClient;
}

async function hold(): Promise<{ lock: HeldLock; lost: string[] }> {
  const locks = new FleetLocks({ client: standIn(), executorId: 'e', executorSecret: 's', log: createLogger({ level: 'error', write: () => {} }) });
  const lock = (await locks.acquire({ executionId: 'x', taskKey: 'k', signal: new AbortController().signal }))!;
  const lost: string[] = [];
  lock.onLost((why) => lost.push(why));
  return { lock, lost };
}

const refreshes = () => calls.filter((c) => c.method === 'refresh').length;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  calls = [];
  refresh = async () => ({ held: true, ttlMs: TTL_MS, remainingMs: TTL_MS });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('a held serialize lock', () => {
  it('is refreshed every sixth of its TTL while the controller answers', async () => {
    const { lock, lost } = await hold();
    await vi.advanceTimersByTimeAsync(TTL_MS * 3);
    expect(refreshes()).toBe(18);
    expect(lost).toEqual([]);
    expect(lock.lost).toBeUndefined();
  });

  it('retries failed refreshes until a third of the lease may be left, then is lost once', async () => {
    refresh = () => Promise.reject(new UnavailableError('cannot reach the controller at c:1: connection refused.'));
    const { lock, lost } = await hold();
    // Lost at 9 s - 3 s after the acquire was sent; tries at 1.5 s, then every 0.9 s (a tenth of the TTL).
    await vi.advanceTimersByTimeAsync(5_999);
    expect(lost).toEqual([]);
    expect(refreshes()).toBe(5);
    await vi.advanceTimersByTimeAsync(1);
    expect(lost).toEqual(['lost lock L (token 5): no refresh succeeded for 6s (cannot reach the controller at c:1: connection refused); its lease of 9s could lapse']);
    expect(lock.lost).toBe(lost[0]);
    await vi.advanceTimersByTimeAsync(TTL_MS);
    expect(refreshes()).toBe(5);
    expect(lost).toHaveLength(1);
    // Given back as not held: the lease is left to lapse.
    await lock.release();
    expect(calls.at(-1)).toMatchObject({ method: 'release', req: { token: 0 } });
  });

  it('counts the lease from when the good refresh was sent, however late its answer came', async () => {
    let slow = true;
    refresh = async () => {
      if (slow) {
        slow = false;
        await new Promise((r) => setTimeout(r, 2_000));
        return { held: true, ttlMs: TTL_MS, remainingMs: TTL_MS };
      }
      throw new UnavailableError('down');
    };
    const { lost } = await hold();
    // The slow refresh is sent at 1.5 s and answered at 3.5 s: lost at 1.5 + 9 - 3 = 7.5 s, not 9.5 s.
    await vi.advanceTimersByTimeAsync(7_499);
    expect(lost).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(lost).toHaveLength(1);
  });

  it('is kept by a refresh that succeeds before the lease could lapse', async () => {
    let failures = 3;
    refresh = async () => {
      if (failures-- > 0) throw new UnavailableError('down');
      return { held: true, ttlMs: TTL_MS, remainingMs: TTL_MS };
    };
    const { lost } = await hold();
    await vi.advanceTimersByTimeAsync(TTL_MS * 3);
    expect(lost).toEqual([]);
  });

  it('is lost at once when the controller says it is no longer held', async () => {
    refresh = async () => ({ held: false, ttlMs: TTL_MS, remainingMs: 0 });
    const { lost } = await hold();
    await vi.advanceTimersByTimeAsync(TTL_MS / 6);
    expect(lost).toEqual(['lost lock L (token 5): the controller says it is no longer held (its lease lapsed; another task may hold it now)']);
  });

  it('once given back, is neither refreshed nor lost', async () => {
    refresh = () => Promise.reject(new UnavailableError('down'));
    const { lock, lost } = await hold();
    await lock.release();
    expect(calls.at(-1)).toMatchObject({ method: 'release', req: { token: 5 } });
    await vi.advanceTimersByTimeAsync(TTL_MS * 2);
    expect(refreshes()).toBe(0);
    expect(lost).toEqual([]);
  });
});
