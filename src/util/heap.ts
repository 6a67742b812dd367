// How far the V8 heap may grow past what the last full collection left alive. V8's own
// heuristics let a long-running process's old space reach several times its live set before
// collecting (a controller with 28 MB alive was seen holding 84 MB of old space, most of it
// garbage); a bound trades a few more full collections for a resident size that follows the
// work. The controller sets it as soon as its config is read, before it starts its work.

import { setFlagsFromString } from 'node:v8';

/** The V8 flag for `percent` (0 = V8's own heuristics: no flag). */
export function heapGrowthFlag(percent: number): string | undefined {
  if (!Number.isInteger(percent) || percent < 0) throw new RangeError(`heap growth ${percent}: must be a whole number ≥ 0`);
  return percent === 0 ? undefined : `--heap-growing-percent=${percent}`;
}

export function applyHeapGrowth(percent: number): void {
  const flag = heapGrowthFlag(percent);
  if (flag) setFlagsFromString(flag);
}
