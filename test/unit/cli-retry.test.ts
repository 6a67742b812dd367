// grid-cli's retry while the controller is unavailable: backoff from 0.5 s doubling, 30 s of
// waiting at most, then the last error; anything else is thrown at once.

import { describe, expect, it } from 'vitest';
import { retryWhileUnavailable } from '../../src/cli/retry.js';
import { FailedPreconditionError, UnavailableError } from '../../src/errors.js';

function rig(failures: Error[]) {
  const waits: number[] = [];
  const told: number[] = [];
  let calls = 0;
  const call = async () => {
    calls++;
    const err = failures.shift();
    if (err) throw err;
    return 'ok';
  };
  const opts = { sleep: async (ms: number) => void waits.push(ms), onRetry: (_e: UnavailableError, ms: number) => void told.push(ms) };
  return { call, opts, waits, told, calls: () => calls };
}

const down = () => new UnavailableError('cannot reach the controller at 127.0.0.1:1: down');

describe('retryWhileUnavailable', () => {
  it('waits 0.5 s, 1 s, 2 s… between tries and returns the first answer', async () => {
    const r = rig([down(), down(), down()]);
    await expect(retryWhileUnavailable(r.call, r.opts)).resolves.toBe('ok');
    expect(r.waits).toEqual([500, 1000, 2000]);
    expect(r.told).toEqual(r.waits);
    expect(r.calls()).toBe(4);
  });

  it('gives up with the last error once 30 s of waiting are spent', async () => {
    const r = rig(Array.from({ length: 20 }, down));
    const err = await retryWhileUnavailable(r.call, r.opts).catch((e: Error) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(r.waits).toEqual([500, 1000, 2000, 4000, 8000, 14_500]);
    expect(r.waits.reduce((a, b) => a + b)).toBe(30_000);
    expect(r.calls()).toBe(7);
  });

  it('throws any other error at once, and an unavailable one that no retry mends', async () => {
    for (const e of [new FailedPreconditionError('no'), new UnavailableError('bad certificate', { retryable: false })]) {
      const r = rig([e]);
      await expect(retryWhileUnavailable(r.call, r.opts)).rejects.toBe(e);
      expect(r.calls()).toBe(1);
      expect(r.waits).toEqual([]);
    }
  });
});
