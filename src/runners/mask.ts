// A LogSink filter that replaces secret values with "****" before output leaves the executor,
// including a secret split across two writes. Works on UTF-8 bytes, per stream.

import type { LogSink, LogStream } from './runner.js';

export const MASK = '****';
/** Shorter values are not masked: masking "a" or "no" would wreck the output and hide nothing. */
export const MIN_SECRET_LENGTH = 3;

const MASK_BYTES = Buffer.from(MASK, 'utf8');

interface Carry {
  /** Held-back bytes: the start of what could become a secret once more output arrives. */
  bytes: Buffer;
  /** How many leading bytes of `bytes` are already covered by a "****" written earlier. */
  masked: number;
}

/**
 * Masks every occurrence of each secret. Overlapping occurrences of different secrets are merged
 * and masked as one, so no fragment of either leaks. Per stream it holds back at most
 * (longest secret − 1) bytes that could be the start of a secret; finish() writes them out.
 */
export class MaskingSink implements LogSink {
  private readonly secrets: Buffer[];
  private readonly carries = new Map<LogStream, Carry>();
  private finished = false;

  constructor(
    private readonly inner: LogSink,
    secretValues: Iterable<string>,
  ) {
    const unique = new Set<string>();
    for (const v of secretValues) if (v.length >= MIN_SECRET_LENGTH) unique.add(v);
    this.secrets = [...unique].map((v) => Buffer.from(v, 'utf8'));
  }

  /** Bytes currently held back across all streams (at most longest secret − 1 per stream). */
  get heldBytes(): number {
    let n = 0;
    for (const c of this.carries.values()) n += c.bytes.length;
    return n;
  }

  write(stream: LogStream, data: Uint8Array): void {
    if (this.finished || data.length === 0) return;
    if (this.secrets.length === 0) {
      this.inner.write(stream, data);
      return;
    }
    this.process(stream, data, false);
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    for (const stream of [...this.carries.keys()]) this.process(stream, new Uint8Array(0), true);
    this.carries.clear();
    this.inner.finish?.();
  }

  private process(stream: LogStream, data: Uint8Array, final: boolean): void {
    const carry = this.carries.get(stream);
    const buf = carry && carry.bytes.length > 0 ? Buffer.concat([carry.bytes, data]) : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const alreadyMasked = carry?.masked ?? 0;
    const hold = final ? buf.length : this.holdPoint(buf);
    const out: Buffer[] = [];
    let cursor = alreadyMasked;
    for (const [start, end] of this.matches(buf, alreadyMasked)) {
      if (start >= hold) break;
      if (start >= cursor) {
        if (start > cursor) out.push(buf.subarray(cursor, start));
        out.push(MASK_BYTES);
      } // else: merged with the part already masked last time, so its "****" is already out.
      cursor = Math.max(cursor, end);
    }
    if (cursor < hold) {
      out.push(buf.subarray(cursor, hold));
      cursor = hold;
    }
    // Copy the held-back bytes: `buf` may be the caller's buffer, which it is free to reuse.
    const rest = Buffer.from(buf.subarray(hold));
    if (rest.length > 0) this.carries.set(stream, { bytes: rest, masked: cursor - hold });
    else this.carries.delete(stream);
    if (out.length > 0) this.inner.write(stream, out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  /**
   * Every occurrence of every secret in `buf` (overlapping ones too), plus the already-masked
   * prefix, merged into sorted disjoint [start, end) ranges.
   */
  private matches(buf: Buffer, alreadyMasked: number): Array<[number, number]> {
    const ranges: Array<[number, number]> = [];
    if (alreadyMasked > 0) ranges.push([0, alreadyMasked]);
    for (const s of this.secrets) {
      for (let i = buf.indexOf(s); i !== -1; i = buf.indexOf(s, i + 1)) ranges.push([i, i + s.length]);
    }
    ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    const merged: Array<[number, number]> = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] < last[1]) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    return merged;
  }

  /**
   * The first position from which the rest of `buf` is a proper prefix of some secret: output
   * from there on must wait for the next write. `buf.length` when nothing needs holding back.
   */
  private holdPoint(buf: Buffer): number {
    let longest = 0;
    for (const s of this.secrets) longest = Math.max(longest, s.length);
    for (let p = Math.max(0, buf.length - longest + 1); p < buf.length; p++) {
      const tail = buf.subarray(p);
      for (const s of this.secrets) {
        if (tail.length < s.length && s.subarray(0, tail.length).equals(tail)) return p;
      }
    }
    return buf.length;
  }
}
