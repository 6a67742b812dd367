import { describe, expect, it } from 'vitest';
import { checkLogSelection, LogLineSelector, type LogSelection } from '../../src/controller/log-lines.js';
import type { LogChunkOut } from '../../src/controller/logs.js';

let seq = 0;
function chunk(text: string, o: { executor?: string; stream?: string; atMs?: number } = {}): LogChunkOut {
  seq++;
  return { executionId: 'X', executorId: o.executor ?? 'e1', executorName: o.executor ?? 'e1', stream: o.stream ?? 'stdout', data: new TextEncoder().encode(text), seq, atMs: o.atMs ?? seq };
}

/** Feeds the chunks as a backlog, then the followed ones; returns [executor, stream, text] of what goes out. */
function select(sel: LogSelection, backlog: LogChunkOut[], followed: LogChunkOut[] = []): Array<[string, string, string]> {
  const s = new LogLineSelector(sel, backlog.length > 0);
  const out: LogChunkOut[] = [];
  for (const c of backlog) out.push(...s.take(c));
  out.push(...s.endBacklog());
  for (const c of followed) out.push(...s.take(c));
  out.push(...s.endBacklog());
  return out.map((c) => [c.executorId, c.stream, new TextDecoder().decode(c.data)]);
}

const text = (out: Array<[string, string, string]>) => out.map(([, , t]) => t).join('');

describe('LogLineSelector: the tail of each executor\'s output', () => {
  it('counts lines, not chunks: a chunk of many lines is cut, a line spanning chunks counts once', () => {
    const backlog = [chunk('1\n2\n3\n4\n'), chunk('5\n6'), chunk('6\n7\n')];
    expect(text(select({ tailLines: 3 }, backlog))).toBe('5\n6' + '6\n7\n');
    expect(text(select({ tailLines: 2 }, backlog))).toBe('6' + '6\n7\n');
    expect(text(select({ tailLines: 1 }, backlog))).toBe('7\n');
    expect(text(select({ tailLines: 100 }, backlog))).toBe('1\n2\n3\n4\n5\n66\n7\n');
  });

  it('counts a last line without its newline as a line', () => {
    expect(text(select({ tailLines: 2 }, [chunk('a\nb\nc\nunfinished')]))).toBe('c\nunfinished');
  });

  it('counts each executor apart, stdout and stderr together, and keeps log order across them', () => {
    const backlog = [chunk('a1\na2\na3\n', { executor: 'a' }), chunk('b1\nb2\n', { executor: 'b' }), chunk('a-err\n', { executor: 'a', stream: 'stderr' }), chunk('b3\n', { executor: 'b' })];
    expect(select({ tailLines: 2 }, backlog)).toEqual([
      ['a', 'stdout', 'a3\n'],
      ['b', 'stdout', 'b2\n'],
      ['a', 'stderr', 'a-err\n'],
      ['b', 'stdout', 'b3\n'],
    ]);
  });

  it('keeps a line unfinished on one stream apart from the other stream\'s lines', () => {
    const backlog = [chunk('out-'), chunk('err\n', { stream: 'stderr' }), chunk('line\n')];
    expect(select({ tailLines: 1 }, backlog)).toEqual([
      ['e1', 'stdout', 'out-'],
      ['e1', 'stdout', 'line\n'],
    ]);
  });

  it('0 lines: nothing of the backlog, then every followed chunk', () => {
    expect(text(select({ tailLines: 0 }, [chunk('old\n')], [chunk('new\n')]))).toBe('new\n');
  });

  it('passes followed chunks through once the backlog has gone out', () => {
    expect(text(select({ tailLines: 1 }, [chunk('1\n2\n')], [chunk('3\n'), chunk('4\n')]))).toBe('2\n3\n4\n');
  });

  it('holds at most about 2N lines however long the log is, and still gives the last N', () => {
    const backlog = Array.from({ length: 10_000 }, (_, i) => chunk(`${i}\n`));
    expect(text(select({ tailLines: 3 }, backlog))).toBe('9997\n9998\n9999\n');
  });
});

describe('LogLineSelector: since a time', () => {
  it('leaves out chunks stored before it, backlog and followed alike', () => {
    const backlog = [chunk('old\n', { atMs: 1000 }), chunk('new\n', { atMs: 2000 })];
    expect(text(select({ sinceMs: 2000 }, backlog, [chunk('later\n', { atMs: 1500 })]))).toBe('new\n');
    expect(text(select({ sinceMs: 3000 }, backlog))).toBe('');
    expect(text(select({ sinceMs: 1 }, backlog))).toBe('old\nnew\n');
  });

  it('combines with a tail: the last N of the lines since then', () => {
    const backlog = [chunk('a\nb\n', { atMs: 1000 }), chunk('c\nd\ne\n', { atMs: 2000 })];
    expect(text(select({ sinceMs: 2000, tailLines: 2 }, backlog))).toBe('d\ne\n');
    expect(text(select({ sinceMs: 500, tailLines: 4 }, backlog))).toBe('b\nc\nd\ne\n');
  });
});

describe('checkLogSelection', () => {
  it('refuses a negative or fractional tail and a negative time, naming the field', () => {
    expect(() => checkLogSelection({ tailLines: -1 })).toThrow('tail_lines: -1 must be a whole number ≥ 0');
    expect(() => checkLogSelection({ tailLines: 1.5 })).toThrow('tail_lines: 1.5 must be a whole number ≥ 0');
    expect(() => checkLogSelection({ sinceMs: -5 })).toThrow(/^since_ms: -5 must be/);
    expect(() => checkLogSelection({ tailLines: 0, sinceMs: 0 })).not.toThrow();
  });
});
