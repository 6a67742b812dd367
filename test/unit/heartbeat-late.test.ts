// An executor's heartbeats when the controller answers late (overloaded, or etcd behind it): the
// heartbeat stream is kept and the late answer is matched to the heartbeat it answers; the stream
// is given up only when a heartbeat stays unanswered for STALL_TIMEOUTS timeouts; and the next
// heartbeat keeps the usual cadence instead of coming back within a quarter second.

import { EventEmitter } from 'node:events';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UnavailableError } from '../../src/errors.js';
import { BeatStream, STALL_TIMEOUTS } from '../../src/executor/beat-stream.js';
import { Heartbeat } from '../../src/executor/heartbeat.js';
import type { ControllerLink, HeartbeatAnswer } from '../../src/executor/link.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../../src/gen/grid/v1/executor.js';
import { ExecutorState } from '../../src/gen/grid/v1/types.js';
import { silentLogger } from '../../src/util/log.js';

beforeEach(() => void vi.useFakeTimers());
afterEach(() => void vi.useRealTimers());

/** A stand-in for grpc-js's duplex call: records what was written and whether it was cancelled. */
class FakeCall extends EventEmitter {
  written: HeartbeatRequest[] = [];
  cancelled = false;
  write(req: HeartbeatRequest): boolean {
    this.written.push(req);
    return true;
  }
  cancel(): void {
    this.cancelled = true;
  }
  end(): void {}
}

const answer = (pingDeadlineSeconds: number): HeartbeatResponse => ({ state: ExecutorState.EXECUTOR_STATE_ACTIVE, pingDeadlineSeconds, cancelledExecutions: [], stop: [], notRecorded: '' });
const status = { version: '1.0', runningTasks: 0, load: 0, draining: false, running: [] };

function beatStream() {
  const call = new FakeCall();
  const s = new BeatStream(call as unknown as ClientDuplexStream<HeartbeatRequest, HeartbeatResponse>, (e) => e, { executorId: 'e1', executorSecret: 's1' }, () => Date.now());
  return { call, s };
}

describe('BeatStream: a late answer', () => {
  it('fails the heartbeat that timed out but keeps the stream, and matches the late answer to it', async () => {
    const { call, s } = beatStream();
    const first = s.send(status, 1_000);
    const firstFailed = expect(first).rejects.toThrow('did not answer a heartbeat in time');
    await vi.advanceTimersByTimeAsync(1_000);
    await firstFailed;
    expect(s.open).toBe(true);
    expect(call.cancelled).toBe(false);

    // The next heartbeat goes on the same stream, without the secret again.
    const second = s.send(status, 1_000);
    expect(call.written.map((r) => r.executorSecret)).toEqual(['s1', '']);
    // The first heartbeat's late answer is not taken for the second's.
    call.emit('data', answer(1));
    call.emit('data', answer(2));
    expect((await second).pingDeadlineSeconds).toBe(2);
    expect(s.unanswered).toBe(0);
  });

  it(`gives the stream up once a heartbeat has been unanswered for ${STALL_TIMEOUTS} timeouts`, async () => {
    const { call, s } = beatStream();
    const beats: Array<Promise<unknown>> = [];
    for (let i = 0; i < STALL_TIMEOUTS; i++) {
      beats.push(s.send(status, 1_000).catch((e: Error) => e));
      await vi.advanceTimersByTimeAsync(1_000);
      // Open until the oldest heartbeat is STALL_TIMEOUTS timeouts old.
      expect(s.open).toBe(i < STALL_TIMEOUTS - 1);
    }
    expect(call.cancelled).toBe(true);
    expect(s.stalled).toBe(true);
    const errors = (await Promise.all(beats)) as Error[];
    expect(errors.every((e) => e instanceof UnavailableError)).toBe(true);
    await expect(s.send(status, 1_000)).rejects.toThrow(/stalled/);
  });

  it('still ends at once when the controller ends the stream', async () => {
    const { s, call } = beatStream();
    const beat = s.send(status, 1_000);
    call.emit('end');
    await expect(beat).rejects.toThrow('the controller ended the heartbeat stream');
    expect(s.open).toBe(false);
    expect(s.stalled).toBe(false);
  });
});

describe('Heartbeat: the next beat after a failure', () => {
  /** A link whose heartbeats fail: after `failAfterMs` (the controller is slow), or at once. */
  function failingLink(failAfterMs: number | 'timeout') {
    const sentAt: number[] = [];
    const link: ControllerLink = {
      heartbeat: (_s, timeoutMs): Promise<HeartbeatAnswer> => {
        sentAt.push(Date.now());
        const ms = failAfterMs === 'timeout' ? timeoutMs : failAfterMs;
        return new Promise((_, reject) => setTimeout(() => reject(new UnavailableError('no answer')), ms));
      },
      beginTasks: async () => [],
      deregister: async () => {},
      taskFile: () => (async function* () {})(),
    };
    return { link, sentAt };
  }

  const start = (link: ControllerLink) => {
    const hb = new Heartbeat({ link, intervalMs: 10_000, status: () => ({ runningTasks: 0, load: 0, draining: false, running: [] }), onRefused: () => {}, log: silentLogger });
    hb.start();
    return hb;
  };

  it('keeps the interval after a heartbeat the controller did not answer in time', async () => {
    const { link, sentAt } = failingLink('timeout');
    const hb = start(link);
    await vi.advanceTimersByTimeAsync(35_000);
    hb.stop();
    const gaps = sentAt.slice(1).map((t, i) => t - sentAt[i]!);
    // One beat per interval: 0, 10, 20, 30 s (not a retry within a quarter second of each timeout).
    expect(sentAt.length).toBe(4);
    expect(gaps.every((g) => g >= 10_000)).toBe(true);
  });

  it('still retries soon, with backoff, when the call fails at once (no controller there)', async () => {
    const { link, sentAt } = failingLink(0);
    const hb = start(link);
    await vi.advanceTimersByTimeAsync(1_000);
    hb.stop();
    // 250 ms, then 500 ms, each jittered down to half: at least three beats within a second.
    expect(sentAt.length).toBeGreaterThanOrEqual(3);
    expect(sentAt[1]! - sentAt[0]!).toBeLessThanOrEqual(250);
  });
});
