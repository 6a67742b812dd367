// The bench's growth series: the line fitted through the points, which term it says dominates at
// each scale, and the printed table (its scaled-down note, missing points).

import { describe, expect, it } from 'vitest';
import { dominance, fitLine, Growth, type GrowthDefinition } from '../bench/growth.js';

const def: GrowthDefinition = {
  key: 'fanout',
  title: 'fan-out',
  nUnit: 'executors',
  valueUnit: 's',
  perUnitLabel: 'ms per executor',
  terms: ['fixed', 'per executor'],
  used: [20, 200, 1_000],
  note: 'QUICK=1: scaled down from 100, 1,000, 10,000',
};

describe('fitLine', () => {
  it('goes through two points exactly and fits three by least squares', () => {
    expect(fitLine([{ n: 100, value: 0.3 }, { n: 1_000, value: 1.2 }])).toEqual({ a: expect.closeTo(0.2, 9), b: expect.closeTo(0.001, 9) });
    const fit = fitLine([{ n: 1, value: 2 }, { n: 2, value: 4.1 }, { n: 3, value: 5.9 }])!;
    expect(fit.b).toBeCloseTo(1.95, 9);
    expect(fit.a).toBeCloseTo(0.1, 9);
  });

  it('gives no line for a single scale', () => {
    expect(fitLine([{ n: 5, value: 1 }])).toBeUndefined();
    expect(fitLine([{ n: 5, value: 1 }, { n: 5, value: 2 }])).toBeUndefined();
  });
});

describe('dominance', () => {
  it('names the fixed term below the crossing point and the per-unit term above it', () => {
    const text = dominance(def, { a: 0.2, b: 0.001 }, [100, 1_000]);
    expect(text).toContain('at 100 the fixed term dominates (per executor 33 %)');
    expect(text).toContain('at 1,000 the per executor term dominates (per executor 83 %)');
    expect(text).toContain('equal at n ≈ 200');
  });

  it('says so when the fit does not grow, or has no fixed part', () => {
    expect(dominance(def, { a: 1, b: -0.001 }, [100])).toContain('does not grow with executors');
    expect(dominance(def, { a: -0.1, b: 0.001 }, [100])).toContain('the per executor term dominates at every scale');
  });
});

describe('Growth.print', () => {
  it('prints each point with its per-unit cost, the note on its scales and what was not measured', () => {
    const g = new Growth();
    g.define(def);
    g.point('fanout', { n: 200, value: 1.2, perUnit: 6, detail: 'b' });
    g.point('fanout', { n: 20, value: 0.3, perUnit: 15, detail: 'a' });
    const text = g.print();
    expect(text).toContain('(QUICK=1: scaled down from 100, 1,000, 10,000)');
    expect(text.indexOf('| 20 ')).toBeLessThan(text.indexOf('| 200 '));
    expect(text).toContain('not measured: 1,000');
    expect(text).toContain('b (per executor) = 0.005 s per executor');
    expect(g.json()['fanout']).toMatchObject({ points: [{ n: 20 }, { n: 200 }], fit: { b: expect.closeTo(0.005, 9) } });
  });

  it('says a series has no point rather than printing an empty table', () => {
    const g = new Growth();
    g.define({ ...def, note: undefined });
    expect(g.print()).toContain('no point measured');
    expect(g.print()).not.toContain('QUICK');
  });
});
