// The dashboard's pure pieces (src/ui): the SSE parser it reads /v1/events with, the NDJSON line
// splitter, the log pane's head-and-tail line cap, and the run form made from a definition.

import { describe, expect, it } from 'vitest';
import { executeBody, formFields, placeProblems } from '../../src/ui/form.js';
import { droppedMarker, LineCap, LineJoiner, lineText, type LogLine } from '../../src/ui/logcap.js';
import { LineSplitter, SseParser } from '../../src/ui/sse.js';

describe('SseParser', () => {
  it('reads events split anywhere, with CRLF, comments and multi-line data; the id carries over', () => {
    const p = new SseParser();
    const text = ': keep-alive\r\n\r\nevent: reset\r\ndata: {"a":1}\r\nid: 14\r\n\r\nevent: execution\ndata: line 1\ndata: line 2\n\ndata:x\n\n';
    const events = [];
    for (const ch of text) events.push(...p.push(ch));
    expect(events).toEqual([
      { event: 'reset', data: '{"a":1}', lastEventId: '14' },
      { event: 'execution', data: 'line 1\nline 2', lastEventId: '14' },
      { event: 'message', data: 'x', lastEventId: '14' },
    ]);
    expect(p.lastEventId).toBe('14');
  });

  it('keeps the id it resumed from until an event sets another; an event without data is not dispatched', () => {
    const p = new SseParser('7');
    expect(p.push('event: heartbeats\ndata: {}\n\nevent: empty\n\nid: 9\r')).toEqual([{ event: 'heartbeats', data: '{}', lastEventId: '7' }]);
    expect(p.push('\n\n')).toEqual([]);
    expect(p.lastEventId).toBe('9');
  });
});

describe('LineSplitter', () => {
  it('gives whole lines, and the rest at the end', () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\n{"b"')).toEqual(['{"a":1}']);
    expect(s.push(':2}\n{"c":3}')).toEqual(['{"b":2}']);
    expect(s.end()).toEqual(['{"c":3}']);
  });
});

const line = (n: number, offset = n): LogLine => ({ executor: 'web-1', executorId: 'E1', stream: 'stdout', line: String(n), offset });

describe('LineCap', () => {
  it('keeps the first half and the last half of its cap, counting what it dropped between', () => {
    const cap = new LineCap(5);
    for (let i = 1; i <= 12; i++) cap.push(line(i));
    const v = cap.view();
    expect([v.head.map((l) => l.line), v.dropped, v.tail.map((l) => l.line)]).toEqual([['1', '2'], 7, ['10', '11', '12']]);
    expect(cap.total).toBe(12);
    expect(droppedMarker(7, cap)).toBe('[grid: 7 lines not shown; kept the first 2 lines and the last 3 lines (Download has them all)]');
  });

  it('takes back the lines of a chunk cut short, from the tail or, before anything was dropped, the head', () => {
    const cap = new LineCap(6);
    for (const [n, offset] of [[1, 1], [2, 1], [3, 2], [4, 3], [5, 3]] as const) cap.push(line(n, offset));
    cap.dropChunk(3);
    expect(cap.view().tail.map((l) => l.line)).toEqual([]);
    expect(cap.view().head.map((l) => l.line)).toEqual(['1', '2', '3']);
    cap.dropChunk(2);
    expect(cap.total).toBe(2);
  });

  it('joins a line a chunk ended without its newline to its rest in the next chunk of its executor and stream', () => {
    const cap = new LineCap(10);
    const joiner = new LineJoiner();
    const take = (l: LogLine, partial = false) => {
      const kept = joiner.take(l, partial);
      if (kept) cap.push(kept);
    };
    const text = () => [...cap.view().head, ...cap.view().tail].map((l) => `${l.executorId}:${l.stream}:${l.line}`);
    take({ ...line(1), line: 'one' });
    take({ ...line(1), line: 'tw' }, true);
    take({ ...line(2), executorId: 'E2', line: 'other' }, true); // another executor's: its own line
    take({ ...line(3), stream: 'stderr', line: 'err' }); // another stream's: its own line
    expect(text()).toEqual(['E1:stdout:one', 'E1:stdout:tw', 'E2:stdout:other', 'E1:stderr:err']);
    take({ ...line(4), line: 'o' }); // the rest of "tw"
    take({ ...line(4), line: 'three' });
    expect(text()).toEqual(['E1:stdout:one', 'E1:stdout:two', 'E2:stdout:other', 'E1:stderr:err', 'E1:stdout:three']);

    // Chunk 5 goes on "three", then the stream is cut and chunk 5 is read again: it is appended once.
    take({ ...line(4), line: 'fo' }, true);
    take({ ...line(5), line: 'u' }, true);
    joiner.dropChunk(5);
    cap.dropChunk(5);
    take({ ...line(5), line: 'u' }, true);
    take({ ...line(6), line: 'r' });
    expect(text().slice(-1)).toEqual(['E1:stdout:four']);
    // A partial line its own chunk began is forgotten with that chunk.
    take({ ...line(7), line: 'fi' }, true);
    joiner.dropChunk(7);
    cap.dropChunk(7);
    take({ ...line(7), line: 'fi' }, true);
    take({ ...line(8), line: 've' });
    expect(text().slice(-2)).toEqual(['E1:stdout:four', 'E1:stdout:five']);
  });

  it('shows lines as grid-cli does: a prefix with several executors, GRID\'s own lines marked', () => {
    expect(lineText(line(1), true)).toBe('[web-1] 1');
    expect(lineText({ ...line(1), stream: 'system', line: 'cancelled' }, false)).toBe('[grid: cancelled]');
  });
});

describe('the run form', () => {
  const def = {
    target: 'group:web',
    timeout_seconds: 30,
    env_vars: {
      args: [
        { name: 'NAME', description: 'who', required: false, type: 'string' as const, default: 'world' },
        { name: 'MODE', description: 'how', required: true, type: 'enum' as const, values: ['fast', 'safe'] },
        { name: 'DRY', description: '', required: false, type: 'bool' as const },
        { name: 'COUNT', description: '', required: false, type: 'int' as const, pattern: '[0-9]+' },
      ],
      secrets: [{ name: 'PASSWORD', description: 'db', required: true }],
    },
  };

  it('types each field from the definition: enum and bool as selects, a secret as a password', () => {
    const f = formFields(def);
    expect(f.map((x) => [x.name, x.kind, x.path, x.required, x.placeholder])).toEqual([
      ['NAME', 'text', 'args.NAME', false, 'default: world'],
      ['MODE', 'select', 'args.MODE', true, ''],
      ['DRY', 'select', 'args.DRY', false, ''],
      ['COUNT', 'int', 'args.COUNT', false, 'matches [0-9]+'],
      ['PASSWORD', 'password', 'args.PASSWORD', true, 'required secret'],
    ]);
    expect(f[1]!.options).toEqual([{ value: '', label: '(choose one)' }, { value: 'fast', label: 'fast' }, { value: 'safe', label: 'safe' }]);
    expect(f[2]!.options!.map((o) => o.value)).toEqual(['', 'true', 'false']);
  });

  it('sends only what was typed, and places each problem beside its field', () => {
    const f = formFields(def);
    expect(executeBody(f, { NAME: '', MODE: 'fast', PASSWORD: 'pw' }, { target: ' group:db ', timeout: '' })).toEqual({ args: { MODE: 'fast', PASSWORD: 'pw' }, target: 'group:db' });
    expect(executeBody(f, {}, { target: '', timeout: 'soon' })).toEqual({ args: {}, timeout_seconds: 'soon' });
    const placed = placeProblems(
      [{ field: 'args.COUNT', message: 'not an int' }, { field: 'args.NOPE', message: 'not declared' }, { message: 'refused' }],
      f.map((x) => x.path),
    );
    expect([...placed.byPath]).toEqual([['args.COUNT', ['not an int']]]);
    expect(placed.general).toEqual(['args.NOPE: not declared', 'refused']);
  });
});
