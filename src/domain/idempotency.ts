// Idempotency keys of Execute: what a valid key is, and the digest that tells a retry of a
// request from another request sent under the same key. Pure; the store keeps the entries.

import { createHash, createHmac } from 'node:crypto';
import { ValidationError } from '../errors.js';

export const IDEMPOTENCY_KEY_MAX = 128;
/** How long a key keeps its execution at least (the store keeps it up to an hour longer). */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600_000;

/** The request fields that make two Execute calls the same request. */
export interface IdempotentRequest {
  job: string;
  args: Record<string, string>;
  target: string;
  timeoutSeconds: number;
  waitOfflineMs: number;
  batchSize: string;
  maxFailures: string;
}

/**
 * The key, checked: 1 to 128 printable ASCII characters without spaces, or "" for none. `field`
 * names it in the error (`idempotency_key` for the API, `--idempotency-key` for the CLI).
 */
export function checkIdempotencyKey(key: string, field = 'idempotency_key'): string {
  if (key === '' || (key.length <= IDEMPOTENCY_KEY_MAX && /^[\x21-\x7e]+$/.test(key))) return key;
  const shown = key.length > 40 ? `${JSON.stringify(key.slice(0, 40)).slice(0, -1)}…" (${key.length} characters)` : JSON.stringify(key);
  throw new ValidationError(
    `${field}: ${shown} is not an idempotency key; use 1 to ${IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces, e.g. a UUID`,
  );
}

/** Where the key is filed: its SHA-256, so that the store never holds the key itself. */
export function idempotencyKeyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/**
 * The request's digest, an HMAC-SHA256 under the key itself: arguments (secrets among them) are
 * part of it, and without the key, which the store does not keep, a digest cannot be used to
 * check a guess of a value. Map order does not matter.
 */
export function requestDigest(key: string, r: IdempotentRequest): string {
  const args = Object.keys(r.args)
    .sort()
    .map((k) => [k, r.args[k]]);
  const canonical = JSON.stringify([r.job, args, r.target, r.timeoutSeconds, r.waitOfflineMs, r.batchSize, r.maxFailures]);
  return createHmac('sha256', key).update(canonical).digest('hex');
}
