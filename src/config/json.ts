// Reads a JSON config file. A syntax error names the file, line and column (see util/json-text.ts).
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { parseJsonText } from '../util/json-text.js';

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
  if (text.trim() === '') throw new ConfigError(path, 'invalid JSON at line 1, column 1: the file is empty');
  const parsed = parseJsonText(text);
  if (!parsed.ok) throw new ConfigError(path, `invalid JSON at line ${parsed.line}, column ${parsed.column}: ${parsed.message}`);
  const raw = parsed.value;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(path, 'the file must hold one JSON object ({ "key": value, ... })');
  }
  return raw as Record<string, unknown>;
}
