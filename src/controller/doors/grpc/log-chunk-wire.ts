// The wire form of GetLogs' LogChunk, written by hand: a followed log sends megabytes a second
// through it. The generated encoder copies a chunk's bytes twice before grpc-js copies them into
// its frame (its writer's finish() into a zeroed array, then Buffer.from); this writes the
// message into one unzeroed buffer of its exact size. The bytes are those the generated encoder
// writes: fields in number order, proto3 defaults left out.

import { LogChunk } from '../../../gen/grid/v1/types.js';

/** Field tags (field number << 3 | wire type): 2 = length-delimited, 0 = varint. */
const TAG = { executionId: 0x0a, executorId: 0x12, executorName: 0x1a, stream: 0x22, data: 0x2a, seq: 0x30, atMs: 0x38 } as const;
const STRING_FIELDS = ['executionId', 'executorId', 'executorName', 'stream'] as const;

/** Serialises a LogChunk as ts-proto's `LogChunk.encode(c).finish()` would, in one copy. */
export function encodeLogChunk(c: LogChunk): Buffer {
  // Negative or fractional numbers never occur in a log position or time; leave them to the
  // generated encoder rather than write its 64-bit two's complement form here too.
  if (!isVarintNumber(c.seq) || !isVarintNumber(c.atMs)) return Buffer.from(LogChunk.encode(c).finish());
  const lengths = STRING_FIELDS.map((f) => Buffer.byteLength(c[f], 'utf8'));
  let size = 0;
  for (const n of lengths) if (n > 0) size += 1 + varintSize(n) + n;
  if (c.data.length > 0) size += 1 + varintSize(c.data.length) + c.data.length;
  if (c.seq !== 0) size += 1 + varintSize(c.seq);
  if (c.atMs !== 0) size += 1 + varintSize(c.atMs);
  // Unzeroed: every byte is written below.
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < STRING_FIELDS.length; i++) {
    const n = lengths[i]!;
    if (n === 0) continue;
    out[at++] = TAG[STRING_FIELDS[i]!];
    at = writeVarint(out, at, n);
    at += out.write(c[STRING_FIELDS[i]!], at, n, 'utf8');
  }
  if (c.data.length > 0) {
    out[at++] = TAG.data;
    at = writeVarint(out, at, c.data.length);
    out.set(c.data, at);
    at += c.data.length;
  }
  if (c.seq !== 0) {
    out[at++] = TAG.seq;
    at = writeVarint(out, at, c.seq);
  }
  if (c.atMs !== 0) {
    out[at++] = TAG.atMs;
    at = writeVarint(out, at, c.atMs);
  }
  if (at !== size) throw new Error(`LogChunk encoding wrote ${at} bytes, expected ${size}`);
  return out;
}

function isVarintNumber(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    size++;
  }
  return size;
}

/** Writes a non-negative safe integer as a base-128 varint; returns the position after it. */
function writeVarint(out: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}
