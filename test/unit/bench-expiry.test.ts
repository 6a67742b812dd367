// The bench's record of when each executor became EXPIRED: a victim that expired falsely early
// on and came back is timed by its expiry after the kill, not by the first one.

import { describe, expect, it } from 'vitest';
import { ExpiryTimes } from '../bench/lib.js';

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
    expect(t.last('b')).toBeUndefined();
  });
});
