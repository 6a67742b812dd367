// Reading a secret (a password, a token, a key) from a file the same way everywhere: grid-cli's
// `--arg K=@path` and the `*_file` config keys. One trailing newline is dropped, so a file
// written with `echo pw > f` holds "pw"; anything else, other whitespace included, is kept.
import { readFileSync, statSync } from 'node:fs';

/** Larger than any password or token; a bigger file is almost certainly the wrong one. */
export const MAX_SECRET_FILE_BYTES = 1024 * 1024;

export type SecretFileResult = { ok: true; value: string } | { ok: false; reason: string };

/** Drops one final "\n" (or "\r\n"). */
export function withoutFinalNewline(text: string): string {
  if (text.endsWith('\r\n')) return text.slice(0, -2);
  return text.endsWith('\n') ? text.slice(0, -1) : text;
}

/** Reads `path` (absolute, or relative to the working directory) as UTF-8 text; the reason names no value. */
export function readSecretFile(path: string): SecretFileResult {
  try {
    const st = statSync(path);
    if (st.isDirectory()) return { ok: false, reason: 'is a directory, not a file' };
    // A pipe or /dev/stdin reports size 0: the cap is checked again on what was read.
    if (st.size > MAX_SECRET_FILE_BYTES) return { ok: false, reason: tooLarge() };
    const data = readFileSync(path);
    if (data.length > MAX_SECRET_FILE_BYTES) return { ok: false, reason: tooLarge() };
    return { ok: true, value: withoutFinalNewline(data.toString('utf8')) };
  } catch (err) {
    return { ok: false, reason: errnoReason(err) };
  }
}

function tooLarge(): string {
  return `is larger than ${MAX_SECRET_FILE_BYTES / 1024 / 1024} MiB; a secret file holds just the value`;
}

export function errnoReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return `cannot be read (${code ?? String(err)})`;
}
