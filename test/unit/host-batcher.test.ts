import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutputBatcher } from '../../src/runners/host/batcher.js';
import type { LogStream } from '../../src/runners/runner.js';

function sink() {
  const writes: Array<[LogStream, string]> = [];
  return { writes, write: (stream: LogStream, data: Uint8Array) => void writes.push([stream, Buffer.from(data).toString()]) };
}

const b = (s: string) => Buffer.from(s);

describe('OutputBatcher', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it('writes output after a quiet spell at once, and gathers what follows it until the window closes', () => {
    const s = sink();
    const batcher = new OutputBatcher(s, 50, 1024);
    batcher.add('stdout', b('first line\n'));
    expect(s.writes).toEqual([['stdout', 'first line\n']]);
    batcher.add('stdout', b('a\n'));
    batcher.add('stdout', b('b\n'));
    batcher.add('stderr', b('oops\n'));
    expect(s.writes).toHaveLength(1);
    vi.advanceTimersByTime(50);
    expect(s.writes).toEqual([
      ['stdout', 'first line\n'],
      ['stdout', 'a\nb\n'],
      ['stderr', 'oops\n'],
    ]);
  });

  it('keeps a steady trickle to one write per window, and goes straight out again once quiet', () => {
    const s = sink();
    const batcher = new OutputBatcher(s, 50, 1024);
    batcher.add('stdout', b('1\n'));
    for (let i = 2; i <= 5; i++) {
      vi.advanceTimersByTime(20);
      batcher.add('stdout', b(`${i}\n`));
    }
    // 1 went at once; 2 and 3 at 50 ms; 4 and 5 wait for the window after that.
    vi.advanceTimersByTime(10);
    expect(s.writes.map(([, t]) => t)).toEqual(['1\n', '2\n3\n']);
    vi.advanceTimersByTime(50);
    expect(s.writes.map(([, t]) => t)).toEqual(['1\n', '2\n3\n', '4\n5\n']);
    vi.advanceTimersByTime(50); // a window with nothing in it closes
    batcher.add('stdout', b('6\n'));
    expect(s.writes.map(([, t]) => t)).toEqual(['1\n', '2\n3\n', '4\n5\n', '6\n']);
  });

  it('writes as soon as batchBytes are waiting, and flush() writes the rest in order', () => {
    const s = sink();
    const batcher = new OutputBatcher(s, 50, 4);
    batcher.add('stdout', b('x'));
    batcher.add('stdout', b('ab'));
    expect(s.writes).toHaveLength(1);
    batcher.add('stdout', b('cd'));
    expect(s.writes.map(([, t]) => t)).toEqual(['x', 'abcd']);
    batcher.add('stderr', b('e'));
    batcher.flush();
    expect(s.writes.map(([, t]) => t)).toEqual(['x', 'abcd', 'e']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
