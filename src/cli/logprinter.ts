// Turns GetLogs chunks into whole lines. A chunk may end mid-line (or mid-character): the text is
// buffered per executor and stream until its newline, and whatever is left is flushed at the
// end. Lines get an `[executor] ` prefix when the execution runs on more than one executor;
// stderr goes to stderr, and GRID's own `system` lines ("[grid: …]") go to stderr. With
// timestamps, each line carries the time of the chunk it began in (RFC 3339, UTC, milliseconds).

import { StringDecoder } from 'node:string_decoder';
import type { LogChunk } from '../gen/grid/v1/types.js';

/**
 * Where printed lines go: one or more whole lines a call, joined by "\n", without the last
 * newline (a chunk's lines go in one call: one write a chunk, not one a line).
 */
export interface LogSink {
  out: (lines: string) => void;
  err: (lines: string) => void;
}

/**
 * `yes`: always prefix; `no`: never (one executor, or --executor given); `auto`: start prefixing
 * once a second executor shows up (a pool task retried elsewhere, a target not resolved yet).
 */
export type PrefixMode = 'yes' | 'no' | 'auto';

export interface LogPrinterOptions {
  prefix: PrefixMode;
  /** One JSON object per line on `out` ({executor, executor_id, stream, line}) instead of text. */
  json?: boolean;
  /** Each line starts with its time (`time` in JSON); the chunks must carry `atMs`. */
  timestamps?: boolean;
}

type ChunkLike = Pick<LogChunk, 'executorId' | 'executorName' | 'stream' | 'data'> & { atMs?: number };

interface Pending {
  executorId: string;
  executorName: string;
  stream: string;
  decoder: StringDecoder;
  text: string;
  /** When the unfinished line began (the time of its first chunk). */
  atMs: number;
}

export class LogPrinter {
  private readonly pending = new Map<string, Pending>();
  private readonly executors = new Set<string>();
  private prefixing: boolean;

  constructor(
    private readonly sink: LogSink,
    private readonly opts: LogPrinterOptions,
  ) {
    this.prefixing = opts.prefix === 'yes';
  }

  write(chunk: ChunkLike): void {
    const who = chunk.executorId || chunk.executorName;
    this.executors.add(who);
    if (this.opts.prefix === 'auto' && this.executors.size > 1) this.prefixing = true;
    const key = `${who}\u0000${chunk.stream}`;
    let p = this.pending.get(key);
    if (!p) {
      p = { executorId: chunk.executorId, executorName: chunk.executorName, stream: chunk.stream, decoder: new StringDecoder('utf8'), text: '', atMs: 0 };
      this.pending.set(key, p);
    }
    if (chunk.executorName) p.executorName = chunk.executorName;
    // The decoder reads the chunk's bytes in place (no copy); a chunk may hold thousands of lines,
    // so they are cut out by position and the unfinished rest is kept once, at the end.
    const at = chunk.atMs ?? 0;
    if (p.text === '') p.atMs = at;
    const text = p.text + p.decoder.write(chunk.data);
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      p.text = text;
      return;
    }
    if (this.plain(p) && text.lastIndexOf('\r', end) < 0) {
      // Printed as they came: the chunk's whole lines are the text up to its last newline.
      this.print(p, text.slice(0, end));
    } else {
      const lines: string[] = [];
      let start = 0;
      for (let nl = text.indexOf('\n'); start <= end; nl = text.indexOf('\n', start)) {
        lines.push(this.format(p, text.slice(start, nl)));
        p.atMs = at;
        start = nl + 1;
      }
      this.print(p, lines.join('\n'));
    }
    p.atMs = at;
    p.text = text.slice(end + 1);
  }

  /** Prints what is left of every unfinished line (at the end of the stream). */
  flush(): void {
    for (const p of this.pending.values()) {
      const rest = p.text + p.decoder.end();
      p.text = '';
      if (rest !== '') this.print(p, this.format(p, rest));
    }
    this.pending.clear();
  }

  /** Whether a line of this output is printed as it is (no prefix, time, JSON or `[grid: …]`). */
  private plain(p: Pending): boolean {
    return !this.opts.json && !this.opts.timestamps && !this.prefixing && (p.stream === 'stdout' || p.stream === 'stderr');
  }

  /** One line of p's output as printed. */
  private format(p: Pending, raw: string): string {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const name = p.executorName || p.executorId || '?';
    const time = this.opts.timestamps ? new Date(p.atMs).toISOString() : undefined;
    if (this.opts.json) return JSON.stringify({ executor: name, executor_id: p.executorId, stream: p.stream, ...(time && { time }), line });
    const prefix = (this.prefixing ? `[${name}] ` : '') + (time ? `${time} ` : '');
    if (p.stream === 'system') return `${prefix}${line.startsWith('[grid: ') ? line : `[grid: ${line}]`}`;
    return prefix + line;
  }

  /** Lines of p's output, formatted and joined, to where that output goes: stdout, or stderr for stderr and GRID's own lines. */
  private print(p: Pending, lines: string): void {
    if (this.opts.json || (p.stream !== 'stderr' && p.stream !== 'system')) this.sink.out(lines);
    else this.sink.err(lines);
  }
}

/** Prints a GetLogs stream through the printer, flushing partial lines when it ends or fails. */
export async function printLogs(stream: AsyncIterable<ChunkLike>, printer: LogPrinter): Promise<void> {
  try {
    for await (const chunk of stream) printer.write(chunk);
  } finally {
    printer.flush();
  }
}

/** The prefix mode for an execution's logs: no prefix when filtered to one executor. */
export function prefixModeFor(taskCount: number, executorFilter?: string): PrefixMode {
  if (executorFilter) return 'no';
  return taskCount > 1 ? 'yes' : 'auto';
}
