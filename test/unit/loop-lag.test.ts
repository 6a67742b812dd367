// LoopLag on the real event loop: a synchronous stall makes it late, and it is on time again
// once no tick has been late for onTimeMs.

import { describe, expect, it } from 'vitest';
import { LoopLag } from '../../src/util/loop-lag.js';

const stall = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until);
};

describe('LoopLag', () => {
  it('is late after a stall longer than lateMs, on time again after onTimeMs without one, and quiet on a free loop', async () => {
    const changes: Array<[boolean, number]> = [];
    const lag = new LoopLag({ tickMs: 20, lateMs: 300, onTimeMs: 400, onChange: (late, behind) => changes.push([late, behind]) });
    lag.start();
    try {
      await new Promise((r) => setTimeout(r, 200));
      expect(changes, 'a free loop').toEqual([]);
      stall(800);
      await new Promise((r) => setTimeout(r, 30));
      expect(lag.isLate()).toBe(true);
      expect(changes).toHaveLength(1);
      expect(changes[0]![0]).toBe(true);
      expect(changes[0]![1]).toBeGreaterThan(300);
      // A second stall within onTimeMs keeps it one late stretch.
      stall(500);
      await new Promise((r) => setTimeout(r, 100));
      expect(changes.map(([late]) => late)).toEqual([true]);
      await new Promise((r) => setTimeout(r, 800));
      expect(changes.map(([late]) => late)).toEqual([true, false]);
      expect(lag.isLate()).toBe(false);
    } finally {
      lag.stop();
    }
  });
});
