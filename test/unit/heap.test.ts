import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadControllerConfig } from '../../src/config/controller.js';
import { heapGrowthFlag } from '../../src/util/heap.js';

const HEAP_JS = resolve('dist/src/util/heap.js');

/** Peak V8 heap (MB) of a process that keeps 200,000 objects alive and churns promoted garbage. */
function peakHeapMb(percent: number): number {
  const script = `
    import { getHeapStatistics } from 'node:v8';
    import { applyHeapGrowth } from ${JSON.stringify(HEAP_JS)};
    applyHeapGrowth(${percent});
    const live = Array.from({ length: 200_000 }, (_, i) => ({ i, s: 'x'.repeat(40) + i }));
    const keep = [];
    let peak = 0;
    for (let round = 0; round < 200; round++) {
      keep.push(Array.from({ length: 5_000 }, (_, i) => ({ round, i, s: 'y'.repeat(30) + i })));
      if (keep.length > 20) keep.shift();
      await new Promise((r) => setImmediate(r));
      peak = Math.max(peak, getHeapStatistics().total_heap_size);
    }
    process.stdout.write(String(peak / 2 ** 20 + live.length * 0));
  `;
  return Number(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 }));
}

describe('heap growth bound', () => {
  it('is the V8 flag for the percentage, none for 0, and refuses what is not a whole number ≥ 0', () => {
    expect(heapGrowthFlag(30)).toBe('--heap-growing-percent=30');
    expect(heapGrowthFlag(0)).toBeUndefined();
    expect(() => heapGrowthFlag(-1)).toThrow('must be a whole number ≥ 0');
    expect(() => heapGrowthFlag(1.5)).toThrow('must be a whole number ≥ 0');
  });

  it('is 30 % by default in the controller config, and GRID_HEAP_GROWTH_PERCENT sets it', () => {
    expect(loadControllerConfig({ env: {} }).heap_growth_percent).toBe(30);
    expect(loadControllerConfig({ env: { GRID_HEAP_GROWTH_PERCENT: '0' } }).heap_growth_percent).toBe(0);
    expect(() => loadControllerConfig({ env: { GRID_HEAP_GROWTH_PERCENT: '-5' } })).toThrow('GRID_HEAP_GROWTH_PERCENT: -5');
  });

  it('keeps a churning process near its live set, where V8 alone lets the heap grow far past it', () => {
    const unbounded = peakHeapMb(0);
    const bounded = peakHeapMb(30);
    expect(bounded).toBeLessThan(unbounded * 0.7);
  }, 120_000);
});
