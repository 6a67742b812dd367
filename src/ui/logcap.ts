// The log pane's bound, as the runners bound a task's output (src/runners/logcap.ts): the first
// half of the cap is kept as it came, the last half in a ring, and a marker says how much was
// dropped in between. Here it counts lines, so the page's memory and the DOM stay small however
// long a job prints; Download fetches the whole log. Pure: no DOM.

export interface LogLine {
  executor: string;
  executorId: string;
  stream: string;
  line: string;
  /** The GRID_LOGS offset of the chunk the line came from. */
  offset: number;
}

export class LineCap {
  readonly headMax: number;
  readonly tailMax: number;
  private readonly head: LogLine[] = [];
  private readonly ring: LogLine[] = [];
  private ringStart = 0;
  private ringSize = 0;
  /** Lines not kept, between the head and the tail. */
  dropped = 0;

  constructor(maxLines: number) {
    if (!Number.isSafeInteger(maxLines) || maxLines < 2) throw new RangeError(`the line cap must be at least 2, got ${maxLines}`);
    this.headMax = Math.floor(maxLines / 2);
    this.tailMax = maxLines - this.headMax;
  }

  /** Every line pushed and not taken back, kept or dropped. */
  get total(): number {
    return this.head.length + this.dropped + this.ringSize;
  }

  push(line: LogLine): void {
    if (this.head.length < this.headMax) {
      this.head.push(line);
      return;
    }
    if (this.ringSize === this.tailMax) {
      this.ring[this.ringStart] = line;
      this.ringStart = (this.ringStart + 1) % this.tailMax;
      this.dropped++;
      return;
    }
    this.ring[(this.ringStart + this.ringSize) % this.tailMax] = line;
    this.ringSize++;
  }

  /**
   * Takes back the last lines if they came from chunk `offset`: a follow cut off resumes after
   * the chunk before it, so that chunk's lines come again.
   */
  dropChunk(offset: number): void {
    while (this.ringSize > 0 && this.ring[(this.ringStart + this.ringSize - 1) % this.tailMax]!.offset === offset) this.ringSize--;
    if (this.ringSize === 0 && this.dropped === 0) while (this.head.at(-1)?.offset === offset) this.head.pop();
  }

  /** The lines kept: the head, how many were dropped after it, and the tail. */
  view(): { head: readonly LogLine[]; dropped: number; tail: LogLine[] } {
    const tail: LogLine[] = [];
    for (let i = 0; i < this.ringSize; i++) tail.push(this.ring[(this.ringStart + i) % this.tailMax]!);
    return { head: this.head, dropped: this.dropped, tail };
  }
}

/**
 * Joins a line that a chunk ended without its newline (`partial` on the wire) to its rest, the
 * first line of the next chunk of its executor and stream. The line is shown as it grows: the
 * object already in the pane is extended. A cut stream reads its last chunk again
 * (dropChunk): what that chunk added to earlier lines is taken back first.
 */
export class LineJoiner {
  /** The unfinished line of each executor and stream. */
  private readonly open = new Map<string, LogLine>();
  /** What the chunk being read (`extendedBy`) appended to earlier lines: their text before. */
  private extended: Array<{ key: string; line: LogLine; text: string }> = [];
  private extendedBy = -1;

  /** The line to add to the pane, or undefined when `l` went on a line already there. */
  take(l: LogLine, partial: boolean): LogLine | undefined {
    const key = `${l.executorId}\n${l.stream}`;
    const open = this.open.get(key);
    if (!open) {
      if (partial) this.open.set(key, l);
      return l;
    }
    if (l.offset !== this.extendedBy) {
      this.extended = [];
      this.extendedBy = l.offset;
    }
    this.extended.push({ key, line: open, text: open.line });
    open.line += l.line;
    if (!partial) this.open.delete(key);
    return undefined;
  }

  /** Chunk `offset` will be read again: what it appended is taken back, and lines it began are forgotten. */
  dropChunk(offset: number): void {
    for (const [key, l] of this.open) if (l.offset === offset) this.open.delete(key);
    if (offset !== this.extendedBy) return;
    for (const e of this.extended.reverse()) {
      e.line.line = e.text;
      this.open.set(e.key, e.line);
    }
    this.extended = [];
    this.extendedBy = -1;
  }
}

/** The marker shown where lines were dropped, worded like the runners' own. */
export function droppedMarker(dropped: number, cap: LineCap): string {
  const kept = (n: number) => `${n} ${n === 1 ? 'line' : 'lines'}`;
  return `[grid: ${kept(dropped)} not shown; kept the first ${kept(cap.headMax)} and the last ${kept(cap.tailMax)} (Download has them all)]`;
}

/** A line as text, as grid-cli prints it: `[executor] ` before it when several executors write. */
export function lineText(l: LogLine, prefix: boolean): string {
  const text = l.stream === 'system' && !l.line.startsWith('[grid: ') ? `[grid: ${l.line}]` : l.line;
  return prefix ? `[${l.executor || l.executorId}] ${text}` : text;
}
