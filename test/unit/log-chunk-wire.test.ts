import { describe, expect, it } from 'vitest';
import { encodeLogChunk } from '../../src/controller/doors/grpc/log-chunk-wire.js';
import { LogChunk } from '../../src/gen/grid/v1/types.js';

function chunk(o: Partial<LogChunk> = {}): LogChunk {
  return { executionId: 'X1', executorId: 'E1', executorName: 'node-1', stream: 'stdout', data: Buffer.from('hello\n'), seq: 7, atMs: 1_765_000_000_123, ...o };
}

/** Encodes by hand, checks the bytes are the generated encoder's, and returns what the generated decoder reads. */
function roundTrip(c: LogChunk): LogChunk {
  const wire = encodeLogChunk(c);
  expect(Buffer.compare(wire, Buffer.from(LogChunk.encode(c).finish()))).toBe(0);
  return LogChunk.decode(wire);
}

function same(a: LogChunk, b: LogChunk): void {
  expect({ ...a, data: Buffer.from(a.data).toString('hex') }).toEqual({ ...b, data: Buffer.from(b.data).toString('hex') });
}

describe('encodeLogChunk: the hand-written GetLogs chunk encoder', () => {
  it('writes the bytes the generated encoder writes, which decode to the same chunk', () => {
    const c = chunk();
    same(roundTrip(c), c);
  });

  it('leaves out empty and zero fields, as proto3 does: an empty chunk is zero bytes', () => {
    const empty: LogChunk = { executionId: '', executorId: '', executorName: '', stream: '', data: Buffer.alloc(0), seq: 0, atMs: 0 };
    expect(encodeLogChunk(empty).length).toBe(0);
    same(roundTrip(empty), empty);
    for (const k of ['executionId', 'executorId', 'executorName', 'stream'] as const) same(roundTrip(chunk({ [k]: '' })), chunk({ [k]: '' }));
    same(roundTrip(chunk({ data: Buffer.alloc(0) })), chunk({ data: Buffer.alloc(0) }));
    same(roundTrip(chunk({ seq: 0, atMs: 0 })), chunk({ seq: 0, atMs: 0 }));
  });

  it('carries a multi-byte UTF-8 character split across two chunks byte for byte', () => {
    const text = Buffer.from('naïve ☃ 𝄞 end\n', 'utf8');
    const cut = text.indexOf(Buffer.from('𝄞', 'utf8')) + 2; // inside the 4-byte sequence
    const a = roundTrip(chunk({ data: text.subarray(0, cut), seq: 1 }));
    const b = roundTrip(chunk({ data: text.subarray(cut), seq: 2 }));
    expect(Buffer.concat([a.data, b.data]).equals(text)).toBe(true);
    expect(Buffer.from(a.data).toString('hex')).toBe(text.subarray(0, cut).toString('hex'));
  });

  it('carries binary output (every byte value, NULs and invalid UTF-8 included) unchanged', () => {
    const data = Buffer.alloc(512);
    for (let i = 0; i < data.length; i++) data[i] = i % 256;
    same(roundTrip(chunk({ data })), chunk({ data }));
  });

  it('reads a chunk that is a view into a larger buffer (as bus messages are), not the buffer around it', () => {
    const whole = Buffer.from('AAAAhello world\nBBBB');
    const data = whole.subarray(4, 16);
    expect(Buffer.from(roundTrip(chunk({ data })).data).toString()).toBe('hello world\n');
  });

  it('sizes multi-byte varints right: large chunks, large positions, non-ASCII names', () => {
    const big = Buffer.alloc(600 * 1024, 'y');
    for (const c of [
      chunk({ data: big, seq: 2 ** 31, atMs: Number.MAX_SAFE_INTEGER }),
      chunk({ data: Buffer.alloc(127, 1), seq: 127, atMs: 128 }),
      chunk({ data: Buffer.alloc(128, 2), seq: 16_383, atMs: 16_384 }),
      chunk({ executorName: 'nœud-é☃-𝄞', executionId: 'x'.repeat(300) }),
    ]) {
      same(roundTrip(c), c);
    }
  });

  it('leaves numbers it does not write itself (negative) to the generated encoder, with the same result', () => {
    const c = chunk({ seq: -1, atMs: -5 });
    same(roundTrip(c), c);
  });
});
