// Reads a JSON config file. A syntax error names the file, line and column, because V8's own
// messages give a character offset at best and sometimes no position at all.
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

/** Reads `path` as a JSON object. Missing file, unreadable file, bad JSON or a non-object: ConfigError naming the path. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(path, 'file not found', { cause: err });
    throw new ConfigError(path, `cannot read the file (${code ?? String(err)})`, { cause: err });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const offset = syntaxErrorOffset(text) ?? offsetFromMessage(String((err as Error).message), text);
    const { line, column } = lineColumn(text, offset);
    const reason = text.trim() === '' ? 'the file is empty' : describeAt(text, offset);
    throw new ConfigError(path, `invalid JSON at line ${line}, column ${column}: ${reason}`, { cause: err });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(path, 'the file must hold one JSON object ({ "key": value, ... })');
  }
  return raw as Record<string, unknown>;
}

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return { line, column: offset - before.lastIndexOf('\n') };
}

function describeAt(text: string, offset: number): string {
  if (offset >= text.length) return 'unexpected end of file (a missing "}" or "]"?)';
  const ch = text[offset]!;
  const hint = ch === '}' || ch === ']' ? ' (a trailing comma?)' : ch === "'" ? ' (JSON strings use double quotes)' : '';
  return `unexpected ${JSON.stringify(ch)}${hint}`;
}

function offsetFromMessage(message: string, text: string): number {
  const m = /position (\d+)/.exec(message);
  return m ? Number(m[1]) : text.length;
}

/**
 * Offset of the first syntax error, or undefined if the scanner finds none. It only locates
 * errors JSON.parse has already reported, so it is permissive where that cannot matter.
 */
export function syntaxErrorOffset(text: string): number | undefined {
  let i = 0;
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') return container('}', true);
    if (c === '[') return container(']', false);
    if (c === '"') return string();
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  const string = (): void => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text[i] === '\\') i++;
      else if (text.charCodeAt(i) < 0x20) fail();
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  const container = (close: string, keyed: boolean): void => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return;
    }
    for (;;) {
      if (keyed) {
        ws();
        if (text[i] !== '"') fail();
        string();
        ws();
        if (text[i] !== ':') fail();
        i++;
      }
      value();
      ws();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === close) {
        i++;
        return;
      }
      fail();
    }
  };
  try {
    value();
    ws();
    return i < text.length ? i : undefined;
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
}
