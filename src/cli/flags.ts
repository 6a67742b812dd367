// Parsers for grid-cli flag values that are more than a string: durations, points in time,
// counts and percentages. Each throws a ValidationError (exit 2) that names the flag, the value and what
// would be valid.

import { ValidationError } from '../errors.js';
import { parseDuration, parseSince } from '../util/duration.js';

export { parseDuration, parseSince };

/** A duration in whole seconds, more than zero and no more than a uint32 (execute --timeout). */
export function parseSeconds(text: string, flag: string): number {
  const ms = parseDuration(text, flag);
  if (ms === 0) throw new ValidationError(`${flag}: must be more than zero (leave it out to use the job's own timeout)`);
  const s = ms / 1000;
  if (s > 0xffff_ffff) throw new ValidationError(`${flag}: ${JSON.stringify(text)} is too long`);
  return s;
}

/**
 * "N" or "N%" as the controller takes them (--batch-size, --max-failures). `min` is the least N
 * allowed; a percentage must be 0–100 (1–100 when min is 1). Returns the normalised text.
 */
export function parseCountOrPercent(text: string, flag: string, min: 0 | 1): string {
  const t = text.trim();
  const m = /^(\d+)(%?)$/.exec(t);
  const what = min === 1 ? 'a number of executors such as 5, or a percentage such as 25%' : 'a number such as 0 or 2, or a percentage such as 10%';
  if (!m) throw new ValidationError(`${flag}: ${JSON.stringify(text)} is not ${what}`);
  const n = Number(m[1]);
  if (m[2] === '%' && n > 100) throw new ValidationError(`${flag}: ${t} is more than 100%`);
  if (n < min) throw new ValidationError(`${flag}: ${JSON.stringify(text)} must be at least ${min}${m[2]}`);
  if (!Number.isSafeInteger(n) || n > 0xffff_ffff) throw new ValidationError(`${flag}: ${JSON.stringify(text)} is too large`);
  return `${n}${m[2]}`;
}

/** A whole number ≥ 1 (e.g. --limit). */
export function parsePositiveInt(text: string, flag: string): number {
  const n = uint32(text);
  if (n === undefined || n < 1) throw new ValidationError(`${flag}: ${JSON.stringify(text)} must be a whole number of at least 1`);
  return n;
}

/** A whole number ≥ 0 (e.g. getlogs --tail). */
export function parseWholeNumber(text: string, flag: string): number {
  const n = uint32(text);
  if (n === undefined) throw new ValidationError(`${flag}: ${JSON.stringify(text)} must be a whole number ≥ 0`);
  return n;
}

/** Digits only, and no more than a uint32 holds; undefined otherwise. */
function uint32(text: string): number | undefined {
  const t = text.trim();
  const n = /^\d+$/.test(t) ? Number(t) : NaN;
  return Number.isSafeInteger(n) && n <= 0xffff_ffff ? n : undefined;
}
