// Freezes an object and everything reachable from it, so that a change to a shared copy throws
// (in strict mode) instead of passing unseen. For records the store hands out as read-only.

export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
  }
  return v;
}
