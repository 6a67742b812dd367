import { describe, it, expect } from 'vitest';
import { LogPrinter, prefixModeFor, printLogs, type PrefixMode } from '../../src/cli/logprinter.js';

function chunk(executorName: string, data: string | Buffer, stream = 'stdout') {
  return { executorId: `id-${executorName}`, executorName, stream, data: Buffer.isBuffer(data) ? data : Buffer.from(data) };
}

function printer(prefix: PrefixMode, json = false) {
  const out: string[] = [];
  const err: string[] = [];
  const p = new LogPrinter({ out: (l) => out.push(...l.split('\n')), err: (l) => err.push(...l.split('\n')) }, { prefix, json });
  return { p, out, err };
}

describe('LogPrinter', () => {
  it('joins a line split across chunks and flushes the last partial line', () => {
    const { p, out } = printer('no');
    p.write(chunk('vm-1', 'hel'));
    p.write(chunk('vm-1', 'lo wor'));
    expect(out).toEqual([]);
    p.write(chunk('vm-1', 'ld\nsecond line\nthi'));
    expect(out).toEqual(['hello world', 'second line']);
    p.write(chunk('vm-1', 'rd, no newline'));
    p.flush();
    expect(out).toEqual(['hello world', 'second line', 'third, no newline']);
  });

  it('keeps empty lines, drops the \\r of CRLF, does not print a line for a trailing newline', () => {
    const { p, out } = printer('no');
    p.write(chunk('vm-1', 'a\r\n\nb\n'));
    p.flush();
    expect(out).toEqual(['a', '', 'b']);
  });

  it('joins a multi-byte character split between chunks', () => {
    const { p, out } = printer('no');
    const bytes = Buffer.from('héllo ✓\n');
    p.write(chunk('vm-1', bytes.subarray(0, 2)));
    p.write(chunk('vm-1', bytes.subarray(2, 8)));
    p.write(chunk('vm-1', bytes.subarray(8)));
    expect(out).toEqual(['héllo ✓']);
  });

  it('buffers each executor and stream apart, prefixes with the executor name, stderr to stderr', () => {
    const { p, out, err } = printer('yes');
    p.write(chunk('web-1', 'starting '));
    p.write(chunk('web-2', 'starting '));
    p.write(chunk('web-1', 'oops: ', 'stderr'));
    p.write(chunk('web-2', 'up\n'));
    p.write(chunk('web-1', 'up\n'));
    p.write(chunk('web-1', 'disk full\n', 'stderr'));
    p.write(chunk('web-2', '[grid: timed out after 5s; sent SIGTERM to the process group]\n', 'system'));
    p.write(chunk('web-2', 'bare note\n', 'system'));
    p.flush();
    expect(out).toEqual(['[web-2] starting up', '[web-1] starting up']);
    expect(err).toEqual(['[web-1] oops: disk full', '[web-2] [grid: timed out after 5s; sent SIGTERM to the process group]', '[web-2] [grid: bare note]']);
  });

  it('auto: no prefix for one executor, prefixes once a second one shows up', () => {
    const { p, out } = printer('auto');
    p.write(chunk('pool-a', 'first try\n'));
    p.write(chunk('pool-b', 'second try\n'));
    p.write(chunk('pool-a', 'late line\n'));
    expect(out).toEqual(['first try', '[pool-b] second try', '[pool-a] late line']);
  });

  it('json: one object per line on stdout, whatever the stream', () => {
    const { p, out, err } = printer('yes', true);
    p.write(chunk('web-1', 'a\nb', 'stdout'));
    p.write(chunk('web-1', 'bad\n', 'stderr'));
    p.flush();
    expect(err).toEqual([]);
    expect(out.map((l) => JSON.parse(l))).toEqual([
      { executor: 'web-1', executor_id: 'id-web-1', stream: 'stdout', line: 'a' },
      { executor: 'web-1', executor_id: 'id-web-1', stream: 'stderr', line: 'bad' },
      { executor: 'web-1', executor_id: 'id-web-1', stream: 'stdout', line: 'b' },
    ]);
  });

  it('splits a large chunk of many lines (a plain Uint8Array, as gRPC may hand it) and keeps its unfinished end', () => {
    const { p, out } = printer('no');
    const lines = Array.from({ length: 5_000 }, (_, i) => `line ${i} ✓`);
    const bytes = Buffer.from(`${lines.join('\n')}\nhalf`);
    p.write({ executorId: 'id-vm-1', executorName: 'vm-1', stream: 'stdout', data: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length - 3) as Buffer });
    expect(out).toEqual(lines);
    p.write(chunk('vm-1', bytes.subarray(bytes.length - 3)));
    p.write(chunk('vm-1', ' done\n'));
    expect(out).toEqual([...lines, 'half done']);
  });

  it('prints the whole lines of a chunk in one call, stdout and stderr apart, CRLF or not', () => {
    const calls: Array<[string, string]> = [];
    const p = new LogPrinter({ out: (t) => calls.push(['out', t]), err: (t) => calls.push(['err', t]) }, { prefix: 'no' });
    p.write(chunk('vm-1', 'a\nb\nc\nhal'));
    p.write(chunk('vm-1', 'x\r\ny\r\n', 'stderr'));
    p.write(chunk('vm-1', 'f\n\nz\n'));
    p.write(chunk('vm-1', 'no newline yet'));
    p.flush();
    expect(calls).toEqual([
      ['out', 'a\nb\nc'],
      ['err', 'x\ny'],
      ['out', 'half\n\nz'],
      ['out', 'no newline yet'],
    ]);
  });

  it('printLogs flushes partial lines even when the stream fails', async () => {
    const { p, out } = printer('no');
    async function* failing() {
      yield chunk('vm-1', 'half a li');
      throw new Error('stream broke');
    }
    await expect(printLogs(failing(), p)).rejects.toThrow('stream broke');
    expect(out).toEqual(['half a li']);
  });

  it('prefixModeFor: several tasks prefix, a filter never does', () => {
    expect(prefixModeFor(3)).toBe('yes');
    expect(prefixModeFor(1)).toBe('auto');
    expect(prefixModeFor(0)).toBe('auto');
    expect(prefixModeFor(3, 'web-1')).toBe('no');
  });
});

describe('LogPrinter --timestamps', () => {
  const at = (ms: number) => new Date(ms).toISOString();
  const T1 = Date.UTC(2026, 10, 22, 3, 0, 57, 123);
  const T2 = T1 + 1500;

  it('starts each line with the RFC 3339 time of the chunk it began in, after the [executor] prefix', () => {
    const out: string[] = [];
    const err: string[] = [];
    const p = new LogPrinter({ out: (l) => out.push(...l.split('\n')), err: (l) => err.push(...l.split('\n')) }, { prefix: 'yes', timestamps: true });
    p.write({ ...chunk('vm-1', 'one\ntw'), atMs: T1 });
    p.write({ ...chunk('vm-1', 'o\nthree\n'), atMs: T2 });
    p.write({ ...chunk('vm-1', 'oops\n', 'stderr'), atMs: T2 });
    p.flush();
    expect(at(T1)).toBe('2026-11-22T03:00:57.123Z');
    expect(out).toEqual([`[vm-1] ${at(T1)} one`, `[vm-1] ${at(T1)} two`, `[vm-1] ${at(T2)} three`]);
    expect(err).toEqual([`[vm-1] ${at(T2)} oops`]);
  });

  it('adds `time` to each JSON line, and nothing without --timestamps', () => {
    const out: string[] = [];
    const p = new LogPrinter({ out: (l) => out.push(...l.split('\n')), err: () => {} }, { prefix: 'no', json: true, timestamps: true });
    p.write({ ...chunk('vm-1', 'hi\n'), atMs: T1 });
    expect(JSON.parse(out[0]!)).toEqual({ executor: 'vm-1', executor_id: 'id-vm-1', stream: 'stdout', time: at(T1), line: 'hi' });
    const { p: plain, out: plainOut } = printer('no');
    plain.write({ ...chunk('vm-1', 'hi\n'), atMs: T1 });
    expect(plainOut).toEqual(['hi']);
  });
});
