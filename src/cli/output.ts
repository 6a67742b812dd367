// How grid-cli prints: aligned tables for people, JSON for scripts (render.ts picks the format).
// No Node imports here: the dashboard uses time and duration too.

/** The colour escapes grid-cli writes (SGR: ESC [ … m); they take no room on the screen. */
const SGR = /\x1b\[[0-9;]*m/g;

/** Columns padded by what shows: a cell's colour escapes are not counted. */
export function table(headers: string[], rows: Array<Array<string | number | undefined>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === undefined || c === '' ? '-' : String(c))))];
  const width = (c: string | undefined) => (c ?? '').replace(SGR, '').length;
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => width(r[i]))));
  return cells
    .map((r) => r.map((c = '', i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - width(c)))).join('  ').trimEnd())
    .join('\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function time(ms: number | undefined): string {
  if (!ms) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** "3s", "2m05s", "1h02m" */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
