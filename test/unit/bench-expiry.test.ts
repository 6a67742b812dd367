// The bench's record of when each executor became EXPIRED: a victim that expired falsely early
// on and came back is timed by its expiry after the kill, not by the first one; false expiries
// are told by the phase of the run they fell in.

import { describe, expect, it } from 'vitest';
import { byPhase, ExpiryTimes } from '../bench/lib.js';

describe('ExpiryTimes', () => {
  it('keeps the last time an executor became EXPIRED, not moved by a rewrite while EXPIRED', () => {
    const t = new ExpiryTimes();
    t.put({ id: 'a', state: 'ACTIVE' }, 1_000);
    expect(t.ever('a')).toBe(false);
    t.put({ id: 'a', state: 'EXPIRED' }, 2_000); // a false expiry
    t.put({ id: 'a', state: 'ACTIVE' }, 3_000); // it heartbeats again
    t.put({ id: 'a', state: 'EXPIRED' }, 9_000); // killed
    t.put({ id: 'a', state: 'EXPIRED' }, 9_500); // the record written again while EXPIRED
    expect(t.ever('a')).toBe(true);
    expect(t.last('a')).toBe(9_000);
    expect(t.first('a')).toBe(2_000);
    expect(t.last('b')).toBeUndefined();
  });

  it('counts expiries by the phase of the run they fell in', () => {
    const phases = [{ name: 'in registration', endMs: 100 }, { name: 'in the window', endMs: 200 }, { name: 'after', endMs: Infinity }];
    expect(byPhase([50, 100, 150, 900], phases)).toBe('2 in registration, 1 in the window, 1 after');
    expect(byPhase([150], phases)).toBe('1 in the window');
    expect(byPhase([], phases)).toBe('');
  });
});
