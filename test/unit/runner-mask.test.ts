import { describe, expect, it } from 'vitest';
import { MaskingSink } from '../../src/runners/mask.js';
import type { LogSink, LogStream } from '../../src/runners/runner.js';

class Collect implements LogSink {
  chunks: Array<{ stream: LogStream; data: Buffer }> = [];
  finished = 0;
  write(stream: LogStream, data: Uint8Array): void {
    this.chunks.push({ stream, data: Buffer.from(data) });
  }
  finish(): void {
    this.finished++;
  }
  text(stream: LogStream = 'stdout'): string {
    return Buffer.concat(this.chunks.filter((c) => c.stream === stream).map((c) => c.data)).toString('utf8');
  }
}

/** Writes `text` split at the given byte offsets, then finishes. */
function run(secrets: string[], parts: Array<string | Buffer>, stream: LogStream = 'stdout'): Collect {
  const out = new Collect();
  const mask = new MaskingSink(out, secrets);
  for (const p of parts) mask.write(stream, typeof p === 'string' ? Buffer.from(p, 'utf8') : p);
  mask.finish();
  return out;
}

describe('MaskingSink', () => {
  it('masks every occurrence in one chunk', () => {
    expect(run(['hunter2'], ['pw=hunter2 again hunter2!']).text()).toBe('pw=**** again ****!');
  });

  it('masks a secret split across two chunks, at every split point', () => {
    const text = 'before hunter2 after';
    for (let i = 1; i < text.length; i++) {
      expect(run(['hunter2'], [text.slice(0, i), text.slice(i)]).text()).toBe('before **** after');
    }
  });

  it('masks a secret split across many one-byte chunks', () => {
    expect(run(['s3cr3t'], [...'xs3cr3ty']).text()).toBe('x****y');
  });

  it('masks several secrets, including overlapping and nested ones', () => {
    expect(run(['alpha', 'beta'], ['alpha-beta-alphabeta']).text()).toBe('****-****-********');
    // Overlap: "abcdef" is covered by "abcd" and "cdef"; nothing of either may show.
    expect(run(['abcd', 'cdef'], ['xabcdefx']).text()).toBe('x****x');
    // A short secret that is the start of a longer one, split right after the short one.
    expect(run(['abc', 'abcdef'], ['1abc', 'def2']).text()).toBe('1****2');
    expect(run(['abc', 'abcdef'], ['1abc', 'x2']).text()).toBe('1****x2');
  });

  it('keeps an overlap masked when the second secret completes in the next chunk', () => {
    expect(run(['xyz12', '12345'], ['a xyz12', '345 b']).text()).toBe('a **** b');
  });

  it('ignores secrets shorter than 3 characters and passes output through without secrets', () => {
    expect(run(['ab', ''], ['ab cd ab']).text()).toBe('ab cd ab');
    expect(run([], ['plain']).text()).toBe('plain');
  });

  it('works on UTF-8 bytes, also when a chunk ends inside a character', () => {
    const secret = 'pässwörd✓';
    const bytes = Buffer.from(`héllo ${secret} wörld`, 'utf8');
    for (let i = 1; i < bytes.length; i++) {
      expect(run([secret], [bytes.subarray(0, i), bytes.subarray(i)]).text()).toBe('héllo **** wörld');
    }
  });

  it('keeps streams apart: a secret split between stdout and stderr is not one secret', () => {
    const out = new Collect();
    const mask = new MaskingSink(out, ['hunter2']);
    mask.write('stdout', Buffer.from('hun'));
    mask.write('stderr', Buffer.from('hunter2'));
    mask.write('stdout', Buffer.from('ter2'));
    mask.finish();
    expect(out.text('stdout')).toBe('****');
    expect(out.text('stderr')).toBe('****');
  });

  it('holds back only what could still become a secret', () => {
    const out = new Collect();
    const mask = new MaskingSink(out, ['hunter2']);
    mask.write('stdout', Buffer.from('line one\n'));
    expect(out.text()).toBe('line one\n');
    expect(mask.heldBytes).toBe(0);
    mask.write('stdout', Buffer.from('xx hunt'));
    expect(out.text()).toBe('line one\nxx ');
    expect(mask.heldBytes).toBe(4);
    mask.write('stdout', Buffer.from('ing'));
    expect(out.text()).toBe('line one\nxx hunting');
    mask.write('stdout', Buffer.from('hunter'));
    expect(mask.heldBytes).toBeLessThanOrEqual('hunter2'.length - 1);
    mask.finish();
    expect(out.text()).toBe('line one\nxx huntinghunter');
    expect(out.finished).toBe(1);
  });

  it('does not keep a reference to the caller buffer it holds back', () => {
    const out = new Collect();
    const mask = new MaskingSink(out, ['hunter2']);
    const buf = Buffer.from('a hun');
    mask.write('stdout', buf);
    buf.fill(0x7a);
    mask.write('stdout', Buffer.from('ter2 b'));
    mask.finish();
    expect(out.text()).toBe('a **** b');
  });

  it('writes nothing after finish, and finish is idempotent', () => {
    const out = new Collect();
    const mask = new MaskingSink(out, ['hunter2']);
    mask.finish();
    mask.finish();
    mask.write('stdout', Buffer.from('late'));
    expect(out.chunks).toHaveLength(0);
    expect(out.finished).toBe(1);
  });
});
