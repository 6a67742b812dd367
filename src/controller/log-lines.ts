// Which part of a log GetLogs sends: the last N lines of each executor's output and/or what was
// written since a time. Applied where the log is read, so a short tail of a long log costs the
// client a few lines, not the whole log. Chunks are cut at line boundaries, never copied.

import { ValidationError } from '../errors.js';
import type { LogChunkOut } from './logs.js';

export interface LogSelection {
  /** Only the last this many lines of each executor's output; undefined = every line. */
  tailLines?: number;
  /** Only chunks stored at or after this time (ms since the epoch); 0 or undefined = all. */
  sinceMs?: number;
}

/** Throws a ValidationError naming the field when a selection cannot be met. */
export function checkLogSelection(s: LogSelection, names = { tailLines: 'tail_lines', sinceMs: 'since_ms' }): void {
  if (s.tailLines !== undefined && !(Number.isSafeInteger(s.tailLines) && s.tailLines >= 0)) {
    throw new ValidationError(`${names.tailLines}: ${JSON.stringify(s.tailLines)} must be a whole number ≥ 0`);
  }
  if (s.sinceMs !== undefined && !(Number.isSafeInteger(s.sinceMs) && s.sinceMs >= 0)) {
    throw new ValidationError(`${names.sinceMs}: ${JSON.stringify(s.sinceMs)} must be a time in ms since the epoch (≥ 0; 0 = all)`);
  }
}

/** Part of a chunk's bytes that belongs to one line. */
interface Segment {
  chunk: LogChunkOut;
  start: number;
  end: number;
}

/** One line of output, as the segments of the chunks it came in. */
interface Line {
  segments: Segment[];
  /** The log position of its last segment: lines are ordered by where they end. */
  endSeq: number;
}

/** One executor's last lines while the backlog is read. */
interface Tail {
  /** Finished lines in order; trimmed to the last N now and then (never shorter than N). */
  done: Line[];
  /** The unfinished line of each stream (stdout, stderr, system). */
  open: Map<string, Line>;
}

const NEWLINE = 0x0a;

/**
 * Applies a selection to a log read in order. The chunks of the backlog (what the log held when
 * it was opened) are held back until it ends, keeping each executor's last N lines; then they go
 * out, in log order, and every later chunk passes straight through (a followed log's new lines).
 * A line may span chunks (of one executor and stream) and a chunk may hold many lines: lines, not
 * chunks, are counted, and a last line without its newline counts as one.
 */
export class LogLineSelector {
  private readonly tails = new Map<string, Tail>();
  private inBacklog: boolean;

  /** `backlog`: whether the log held anything when it was opened. */
  constructor(
    private readonly sel: LogSelection,
    backlog: boolean,
  ) {
    this.inBacklog = backlog && sel.tailLines !== undefined;
  }

  /** What to send of this chunk now (held back while the backlog is read with a tail). */
  take(c: LogChunkOut): LogChunkOut[] {
    if (this.sel.sinceMs && c.atMs < this.sel.sinceMs) return [];
    if (!this.inBacklog) return [c];
    const n = this.sel.tailLines!;
    if (n > 0) this.keep(c, n);
    return [];
  }

  /** The backlog has been read: the lines held back, in log order (nothing the second time). */
  endBacklog(): LogChunkOut[] {
    if (!this.inBacklog) return [];
    this.inBacklog = false;
    const n = this.sel.tailLines!;
    const segments: Segment[] = [];
    for (const t of this.tails.values()) {
      const lines = [...t.done, ...t.open.values()].sort((a, b) => a.endSeq - b.endSeq);
      for (const line of lines.slice(Math.max(0, lines.length - n))) segments.push(...line.segments);
    }
    this.tails.clear();
    return joinSegments(segments);
  }

  private keep(c: LogChunkOut, n: number): void {
    let t = this.tails.get(c.executorId);
    if (!t) this.tails.set(c.executorId, (t = { done: [], open: new Map() }));
    let line = t.open.get(c.stream) ?? { segments: [], endSeq: c.seq };
    const data = c.data;
    let start = 0;
    // A newline byte never occurs inside a multi-byte UTF-8 character: cutting there is safe.
    for (let nl = data.indexOf(NEWLINE); nl >= 0; nl = data.indexOf(NEWLINE, start)) {
      line.segments.push({ chunk: c, start, end: nl + 1 });
      line.endSeq = c.seq;
      t.done.push(line);
      line = { segments: [], endSeq: c.seq };
      start = nl + 1;
    }
    if (start < data.length) {
      line.segments.push({ chunk: c, start, end: data.length });
      line.endSeq = c.seq;
      t.open.set(c.stream, line);
    } else {
      t.open.delete(c.stream);
    }
    // Trimmed in batches: the cost per line stays constant, and at most 2N lines are held.
    if (t.done.length > 2 * n) t.done.splice(0, t.done.length - n);
  }
}

/** Segments in log order, those of one chunk joined back into one piece of it. */
function joinSegments(segments: Segment[]): LogChunkOut[] {
  const byChunk = new Map<number, { chunk: LogChunkOut; start: number; end: number }>();
  for (const s of segments) {
    const cur = byChunk.get(s.chunk.seq);
    if (!cur) byChunk.set(s.chunk.seq, { ...s });
    else {
      cur.start = Math.min(cur.start, s.start);
      cur.end = Math.max(cur.end, s.end);
    }
  }
  return [...byChunk.values()]
    .sort((a, b) => a.chunk.seq - b.chunk.seq)
    .map(({ chunk, start, end }) => (start === 0 && end === chunk.data.length ? chunk : { ...chunk, data: chunk.data.subarray(start, end) }));
}
