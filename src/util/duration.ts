// Durations as people write them ("90s", "10m", "2h", "1h30m" or plain seconds), and points in
// time as how long ago or an RFC 3339 time, for grid-cli's flags and the HTTP door's fields alike.

import { ValidationError } from '../errors.js';

const UNIT_MS = { h: 3_600_000, m: 60_000, s: 1_000 } as const;

/**
 * "90s", "10m", "2h", "1h30m", "1h30m15s" or plain seconds ("45") → milliseconds. Units come in
 * the order h, m, s, each at most once. Zero is allowed (`0`, `0s`).
 */
export function parseDuration(text: string, flag: string): number {
  const t = text.trim().toLowerCase();
  const bad = () =>
    new ValidationError(`${flag}: ${JSON.stringify(text)} is not a duration; write e.g. 90s, 10m, 2h, 1h30m or plain seconds such as 45`);
  if (/^\d+$/.test(t)) return checkedMs(Number(t) * 1000, bad);
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(t);
  if (!m || t === '') throw bad();
  const [, h, min, s] = m;
  return checkedMs(Number(h ?? 0) * UNIT_MS.h + Number(min ?? 0) * UNIT_MS.m + Number(s ?? 0) * UNIT_MS.s, bad);
}

function checkedMs(ms: number, bad: () => ValidationError): number {
  if (!Number.isSafeInteger(ms)) throw bad();
  return ms;
}

/** RFC 3339: a date, `T` (or a space), a time with optional fraction, and `Z` or an offset. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A point in time given as how long ago ("10m", "2h", "1h30m", plain seconds) or as an RFC 3339
 * time ("2026-11-22T03:00:00Z") → ms since the epoch. Date.parse alone takes many looser forms,
 * hence the pattern first.
 */
export function parseSince(text: string, flag: string, now = Date.now()): number {
  const t = text.trim();
  if (RFC3339.test(t)) {
    const ms = Date.parse(t.toUpperCase().replace(' ', 'T'));
    if (Number.isFinite(ms) && ms >= 0) return ms;
  } else if (/^[\dhms]+$/i.test(t)) {
    try {
      return Math.max(0, now - parseDuration(t, flag));
    } catch {
      // Reported below with both forms.
    }
  }
  throw new ValidationError(`${flag}: ${JSON.stringify(text)} is not a duration (10m, 2h, 1h30m or seconds) or an RFC 3339 time (2026-11-22T03:00:00Z)`);
}
