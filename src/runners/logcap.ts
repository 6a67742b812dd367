// A LogSink filter that bounds one task's output: the first half of the cap passes through live,
// the last half is kept in a ring buffer written out by finish(), with a marker saying what was
// dropped in between. Memory stays within the cap whatever the task prints.

import { formatBytes } from '../util/bytes.js';
import type { LogSink, LogStream } from './runner.js';

/** One run of bytes from one stream inside the tail ring. */
interface Segment {
  stream: LogStream;
  length: number;
}

export class LogCap implements LogSink {
  readonly headBytes: number;
  readonly tailBytes: number;
  /** Head budget used up (a head cut short at a UTF-8 boundary counts as full). */
  private headUsed = 0;
  /** Bytes actually passed through as the head. */
  private headWritten = 0;
  private ring: Buffer | undefined;
  /** Index of the oldest byte in the ring, and how many bytes it holds. */
  private ringStart = 0;
  private ringSize = 0;
  private readonly segments: Segment[] = [];
  private segmentsStart = 0;
  private dropped = 0;
  private finished = false;

  constructor(
    private readonly inner: LogSink,
    readonly maxBytes: number,
  ) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 2) throw new RangeError(`log cap must be at least 2 bytes, got ${maxBytes}`);
    this.headBytes = Math.floor(maxBytes / 2);
    this.tailBytes = maxBytes - this.headBytes;
  }

  /** Bytes held in memory, waiting for finish(); never more than `tailBytes`. */
  get bufferedBytes(): number {
    return this.ringSize;
  }

  /** Size of the memory allocated for the tail; never more than `tailBytes`. */
  get allocatedBytes(): number {
    return this.ring?.length ?? 0;
  }

  /** Bytes dropped so far (final once finish() has run). */
  get droppedBytes(): number {
    return this.dropped;
  }

  write(stream: LogStream, data: Uint8Array): void {
    if (this.finished || data.length === 0) return;
    let rest = data;
    if (this.headUsed < this.headBytes) {
      let take = Math.min(this.headBytes - this.headUsed, rest.length);
      // Do not end the head in the middle of a UTF-8 sequence (the rest goes to the tail).
      if (take < rest.length) take = utf8Boundary(rest, take);
      if (take > 0) this.inner.write(stream, rest.subarray(0, take));
      this.headUsed += take;
      this.headWritten += take;
      // A backed-off boundary closes the head: everything after it belongs to the tail.
      if (take < rest.length) this.headUsed = this.headBytes;
      rest = rest.subarray(take);
    }
    if (rest.length > 0) this.pushTail(stream, rest);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    let tail = this.takeRing();
    // Do not start the tail in the middle of a UTF-8 sequence when bytes were dropped before it.
    if (this.dropped > 0) {
      let skip = 0;
      while (skip < 3 && skip < tail.bytes.length && (tail.bytes[skip]! & 0xc0) === 0x80) skip++;
      if (skip > 0) tail = { bytes: tail.bytes.subarray(skip), segments: trimSegments(tail.segments, skip) };
      this.dropped += skip;
      const line = `[grid: ${formatBytes(this.dropped)} of output dropped; kept the first ${formatBytes(this.headWritten)} and the last ${formatBytes(tail.bytes.length)}]\n`;
      this.inner.write('system', Buffer.from(line, 'utf8'));
    }
    let offset = 0;
    for (const seg of tail.segments) {
      this.inner.write(seg.stream, tail.bytes.subarray(offset, offset + seg.length));
      offset += seg.length;
    }
    this.ring = undefined;
    this.inner.finish?.();
  }

  private pushTail(stream: LogStream, data: Uint8Array): void {
    const cap = this.tailBytes;
    this.ring ??= Buffer.alloc(cap);
    if (data.length >= cap) {
      // The new data alone fills the tail: everything held so far and its own start are dropped.
      this.dropped += this.ringSize + data.length - cap;
      this.ring.set(data.subarray(data.length - cap), 0);
      this.ringStart = 0;
      this.ringSize = cap;
      this.segments.length = 0;
      this.segmentsStart = 0;
      this.segments.push({ stream, length: cap });
      return;
    }
    const overflow = this.ringSize + data.length - cap;
    if (overflow > 0) this.evict(overflow);
    const at = (this.ringStart + this.ringSize) % cap;
    const first = Math.min(data.length, cap - at);
    this.ring.set(data.subarray(0, first), at);
    if (first < data.length) this.ring.set(data.subarray(first), 0);
    this.ringSize += data.length;
    const last = this.segments[this.segments.length - 1];
    if (last && this.segments.length > this.segmentsStart && last.stream === stream) last.length += data.length;
    else this.segments.push({ stream, length: data.length });
  }

  /** Drops the oldest `n` bytes of the ring (and their segments). */
  private evict(n: number): void {
    this.ringStart = (this.ringStart + n) % this.tailBytes;
    this.ringSize -= n;
    this.dropped += n;
    while (n > 0) {
      const seg = this.segments[this.segmentsStart]!;
      const cut = Math.min(n, seg.length);
      seg.length -= cut;
      n -= cut;
      if (seg.length === 0) this.segmentsStart++;
    }
    // Compact now and then so the array of spent segments does not grow without bound.
    if (this.segmentsStart > 64 && this.segmentsStart * 2 > this.segments.length) {
      this.segments.splice(0, this.segmentsStart);
      this.segmentsStart = 0;
    }
  }

  /** The ring's content in order, as one buffer, with its segments. */
  private takeRing(): { bytes: Buffer; segments: Segment[] } {
    const segments = this.segments.slice(this.segmentsStart);
    if (!this.ring || this.ringSize === 0) return { bytes: Buffer.alloc(0), segments: [] };
    const end = this.ringStart + this.ringSize;
    const bytes =
      end <= this.tailBytes
        ? this.ring.subarray(this.ringStart, end)
        : Buffer.concat([this.ring.subarray(this.ringStart), this.ring.subarray(0, end - this.tailBytes)]);
    return { bytes, segments };
  }
}

/** The largest n' ≤ n such that data[0, n') does not end inside a UTF-8 sequence. */
function utf8Boundary(data: Uint8Array, n: number): number {
  // data[n] is the first byte not taken; if it is a continuation byte, back off to its lead byte.
  let i = n;
  while (i > 0 && n - i < 3 && (data[i]! & 0xc0) === 0x80) i--;
  return (data[i]! & 0xc0) === 0x80 ? n : i;
}

function trimSegments(segments: Segment[], skip: number): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    const cut = Math.min(skip, s.length);
    skip -= cut;
    if (s.length - cut > 0) out.push({ stream: s.stream, length: s.length - cut });
  }
  return out;
}

