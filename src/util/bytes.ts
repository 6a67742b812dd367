// Sizes as GRID words them in messages: binary units, one decimal at most.

/** "5 MiB", "48.2 MiB", "512 B" — binary units, one decimal at most. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  const s = u === 0 ? String(v) : v.toFixed(1).replace(/\.0$/, '');
  return `${s} ${units[u]}`;
}

/**
 * A size and the limit it is over, each rounded as formatBytes does, or in bytes when the two
 * would read the same ("64 KiB; the limit is 64 KiB" says nothing).
 */
export function sizeAndLimit(size: number, limit: number): { size: string; limit: string } {
  const [s, l] = [formatBytes(size), formatBytes(limit)];
  if (s !== l) return { size: s, limit: l };
  return { size: `${size.toLocaleString('en-US')} bytes`, limit: `${limit.toLocaleString('en-US')} bytes (${l})` };
}
