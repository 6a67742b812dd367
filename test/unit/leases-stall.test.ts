// Lease keep-alives on a busy etcd (src/store/leases.ts): one keep-alive answered late fails only
// its own caller, not every keep-alive waiting on the stream, and its late answer goes to no one
// else; a stream that answers nothing at all for the timeout is given up and another opened.
// etcd's stream is stood in for by a fake that answers when the test says, so the order of
// answers is the test's (test/integration/leases.test.ts runs the same code on a real etcd).

import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UnavailableError } from '../../src/errors.js';
import { Leases } from '../../src/store/leases.js';
import type { Kv } from '../../src/store/kv.js';

/** A keep-alive stream that records what is written and answers on demand. */
class FakeStream extends EventEmitter {
  written: string[] = [];
  ended = false;
  write(req: { ID: string }): void {
    this.written.push(String(req.ID));
  }
  end(): void {
    this.ended = true;
  }
  answer(id: string, ttl = 30): void {
    this.emit('data', { ID: id, TTL: String(ttl) });
  }
}

function rig() {
  const streams: FakeStream[] = [];
  /** Opens that have not completed: the test completes them (or never does). */
  const opening: Array<() => void> = [];
  let holdOpens = false;
  const kv = {
    client: {
      leaseClient: {
        leaseKeepAlive: async () => {
          if (holdOpens) await new Promise<void>((resolve) => opening.push(resolve));
          const s = new FakeStream();
          streams.push(s);
          return s;
        },
      },
    },
  } as unknown as Kv;
  // One stream, so every lease shares it; a 5 s timeout.
  return { leases: new Leases(kv, 1, 5_000), streams, opening, holdOpens: (on: boolean) => void (holdOpens = on) };
}

/** Lets the 25 ms batch go out. */
async function flush(): Promise<void> {
  await vi.advanceTimersByTimeAsync(30);
}

describe('lease keep-alive stream under a slow etcd', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('fails only the keep-alive answered too late; the stream and the others live on', async () => {
    const { leases, streams } = rig();
    const slow = leases.keepAlive('100');
    const quick = leases.keepAlive('200');
    const slowResult = slow.then(
      () => 'answered',
      (err: Error) => err,
    );
    await flush();
    expect(streams[0]!.written).toEqual(['100', '200']);
    // etcd answers one of them within the timeout, and keeps answering others later.
    await vi.advanceTimersByTimeAsync(3_000);
    streams[0]!.answer('200');
    expect(await quick).toBe(30);
    const later = leases.keepAlive('300');
    await flush();
    await vi.advanceTimersByTimeAsync(2_100);
    const failed = await slowResult;
    expect(failed).toBeInstanceOf(UnavailableError);
    expect((failed as Error).message).toMatch(/did not answer a lease keep-alive in time/);
    // The stream was heard from 2 s ago: it is kept, and what waits on it is not failed.
    expect(streams).toHaveLength(1);
    expect(streams[0]!.ended).toBe(false);
    streams[0]!.answer('300', 25);
    expect(await later).toBe(25);
  });

  it("matches a late answer to the keep-alive that timed out, not to the lease's next one", async () => {
    const { leases, streams } = rig();
    const first = leases.keepAlive('100').catch((err: Error) => err);
    await flush();
    // Something else on the stream is answered, so the stream is not stalled.
    const other = leases.keepAlive('200');
    await flush();
    await vi.advanceTimersByTimeAsync(4_000);
    streams[0]!.answer('200');
    await other;
    await vi.advanceTimersByTimeAsync(1_100);
    expect(await first).toBeInstanceOf(UnavailableError);
    const second = leases.keepAlive('100');
    await flush();
    expect(streams[0]!.written).toEqual(['100', '200', '100']);
    // The first keep-alive's late answer, then the second's: the second gets its own.
    streams[0]!.answer('100', 11);
    streams[0]!.answer('100', 22);
    expect(await second).toBe(22);
  });

  it('gives up a stream that answers nothing for the timeout, failing what waits on it, and opens another', async () => {
    const { leases, streams } = rig();
    const a = leases.keepAlive('100').catch((err: Error) => err);
    const b = leases.keepAlive('200').catch((err: Error) => err);
    await flush();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await a).toBeInstanceOf(UnavailableError);
    expect(await b).toBeInstanceOf(UnavailableError);
    expect(streams[0]!.ended).toBe(true);
    const c = leases.keepAlive('100');
    await flush();
    expect(streams).toHaveLength(2);
    expect(streams[1]!.written).toEqual(['100']);
    streams[1]!.answer('100');
    expect(await c).toBe(30);
  });
  it('fails a keep-alive whose stream does not open in time, and opens another for the next', async () => {
    const { leases, streams, opening, holdOpens } = rig();
    holdOpens(true);
    const first = leases.keepAlive('100').then(() => 'answered', (err: Error) => err);
    await vi.advanceTimersByTimeAsync(5_000);
    const err = await first;
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/did not open a lease keep-alive stream in time/);
    holdOpens(false);
    const second = leases.keepAlive('100');
    await flush();
    expect(streams.map((s) => s.written)).toEqual([['100']]);
    streams[0]!.answer('100', 30);
    expect(await second).toBe(30);
    // The open that never completed in time ends its stream when it finally does.
    opening[0]!();
    await vi.advanceTimersByTimeAsync(1);
    expect(streams.map((s) => s.ended)).toEqual([false, true]);
  });
});
