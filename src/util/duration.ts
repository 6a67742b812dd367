// Durations as people write them ("90s", "10m", "2h", "1h30m" or plain seconds), for grid-cli's
// flags and the HTTP door's request fields alike.

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
