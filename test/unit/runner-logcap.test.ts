import { describe, expect, it } from 'vitest';
import { LogCap } from '../../src/runners/logcap.js';
import { formatBytes } from '../../src/util/bytes.js';
import type { LogSink, LogStream } from '../../src/runners/runner.js';

class Collect implements LogSink {
  chunks: Array<{ stream: LogStream; text: string }> = [];
  finished = 0;
  write(stream: LogStream, data: Uint8Array): void {
    this.chunks.push({ stream, text: Buffer.from(data).toString('utf8') });
  }
  finish(): void {
    this.finished++;
  }
  all(): string {
    return this.chunks.map((c) => c.text).join('');
  }
}

describe('LogCap', () => {
  it('passes everything through when the output fits', () => {
    const out = new Collect();
    const cap = new LogCap(out, 20);
    cap.write('stdout', Buffer.from('0123456789'));
    cap.write('stderr', Buffer.from('abcdefghij'));
    cap.finish();
    expect(out.all()).toBe('0123456789abcdefghij');
    expect(out.chunks.map((c) => c.stream)).toEqual(['stdout', 'stderr']);
    expect(out.chunks.some((c) => c.stream === 'system')).toBe(false);
    expect(out.finished).toBe(1);
  });

  it('keeps the exact head and tail and says what was dropped in between', () => {
    const out = new Collect();
    const cap = new LogCap(out, 10);
    const text = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    for (const ch of text) cap.write('stdout', Buffer.from(ch));
    // The head is live: it is out before finish().
    expect(out.all()).toBe('ABCDE');
    cap.finish();
    expect(out.chunks.filter((c) => c.stream === 'stdout').map((c) => c.text).join('')).toBe('ABCDEVWXYZ');
    const marker = out.chunks.find((c) => c.stream === 'system');
    expect(marker?.text).toBe('[grid: 16 B of output dropped; kept the first 5 B and the last 5 B]\n');
    // Order: head, marker, tail.
    expect(out.all()).toBe(`ABCDE${marker?.text}VWXYZ`);
    expect(cap.droppedBytes).toBe(16);
  });

  it('keeps stream tags in the tail, even when a chunk is cut in the middle', () => {
    const out = new Collect();
    const cap = new LogCap(out, 8);
    cap.write('stdout', Buffer.from('head'));
    cap.write('stdout', Buffer.from('1234567'));
    cap.write('stderr', Buffer.from('EE'));
    cap.write('stdout', Buffer.from('o'));
    cap.finish();
    const tail = out.chunks.slice(out.chunks.findIndex((c) => c.stream === 'system') + 1);
    expect(tail).toEqual([
      { stream: 'stdout', text: '7' },
      { stream: 'stderr', text: 'EE' },
      { stream: 'stdout', text: 'o' },
    ]);
  });

  it('handles one write bigger than the whole cap', () => {
    const out = new Collect();
    const cap = new LogCap(out, 10);
    cap.write('stdout', Buffer.from('0123456789'.repeat(10)));
    cap.finish();
    expect(out.chunks[0]).toEqual({ stream: 'stdout', text: '01234' });
    expect(out.chunks[1]!.stream).toBe('system');
    expect(out.chunks[1]!.text).toContain('90 B of output dropped');
    expect(out.chunks[2]).toEqual({ stream: 'stdout', text: '56789' });
  });

  it('never holds more than the tail half of the cap in memory', () => {
    const out = new Collect();
    const maxBytes = 1024;
    const cap = new LogCap(out, maxBytes);
    let seed = 7;
    let total = 0;
    for (let i = 0; i < 5000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const size = 1 + (seed % 700);
      cap.write(i % 3 === 0 ? 'stderr' : 'stdout', Buffer.alloc(size, 0x61 + (i % 26)));
      total += size;
      expect(cap.bufferedBytes).toBeLessThanOrEqual(cap.tailBytes);
      expect(cap.allocatedBytes).toBeLessThanOrEqual(cap.tailBytes);
    }
    expect(cap.headBytes + cap.tailBytes).toBe(maxBytes);
    cap.finish();
    const kept = out.chunks.filter((c) => c.stream !== 'system').reduce((n, c) => n + c.text.length, 0);
    expect(kept).toBe(maxBytes);
    expect(cap.droppedBytes).toBe(total - maxBytes);
  });

  it('does not cut a UTF-8 character at the head or at the start of the tail', () => {
    const out = new Collect();
    const cap = new LogCap(out, 10);
    // "aaaa" + "é" (2 bytes): the head budget of 5 ends inside "é".
    cap.write('stdout', Buffer.from('aaaaé' + 'x'.repeat(20) + 'ééé', 'utf8'));
    cap.finish();
    const texts = out.chunks.filter((c) => c.stream === 'stdout').map((c) => c.text);
    expect(texts[0]).toBe('aaaa');
    expect(texts.join('')).not.toContain('\uFFFD');
    expect(texts[texts.length - 1]).toMatch(/é$/);
  });

  it('writes nothing after finish, and finish is idempotent', () => {
    const out = new Collect();
    const cap = new LogCap(out, 10);
    cap.finish();
    cap.finish();
    cap.write('stdout', Buffer.from('late'));
    expect(out.chunks).toHaveLength(0);
    expect(out.finished).toBe(1);
  });

  it('formats sizes the way the marker shows them', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5 MiB');
    expect(formatBytes(Math.round(48.2 * 1024 * 1024))).toBe('48.2 MiB');
  });
});
