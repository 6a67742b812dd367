// The `*_file` forms of secret config keys (`token_file`, `secrets_key_file`, GRID_TOKEN_FILE…):
// the value is read from a file, so it need not sit inline in a config file or the environment.
// They are resolved before decoding, so every other rule of the key still applies to the value.
import { ConfigError } from '../errors.js';
import { readSecretFile } from '../util/secret-file.js';
import { absolutePath } from './checks.js';
import type { Env } from './schema.js';

const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Reads the secret at `path` for the key `fileKey`; a missing, unreadable or empty file is one line naming both. */
export function secretFromFile(fileKey: string, path: string): string {
  const r = readSecretFile(path);
  if (!r.ok) throw new ConfigError(fileKey, `cannot read ${path}: ${r.reason}`);
  if (r.value === '') throw new ConfigError(fileKey, `${path} is empty; it must hold the secret itself`);
  return r.value;
}

/**
 * In a config file's object: replaces `<key>_file` with `<key>` read from that file (a relative
 * path is relative to `base`, the file's folder). `at` is the object's path for messages
 * (`tokens[0]`, or '' at the top).
 */
export function inlineSecretFile(obj: unknown, key: string, at: string, base: string): void {
  if (!isPlain(obj)) return;
  const fileKey = `${key}_file`;
  if (obj[fileKey] === undefined) return;
  const name = (k: string): string => (at ? `${at}.${k}` : k);
  if (obj[key] !== undefined) throw new ConfigError(name(key), `given together with ${name(fileKey)}; give one or the other`);
  const path = obj[fileKey];
  if (typeof path !== 'string' || path === '') throw new ConfigError(name(fileKey), `${JSON.stringify(path)} must be the path of a file holding the secret`);
  obj[key] = secretFromFile(name(fileKey), absolutePath(path, base));
  delete obj[fileKey];
}

/** `inlineSecretFile` for `key` in every object of the list `obj[listKey]`. */
export function inlineSecretFiles(obj: unknown, listKey: string, key: string, base: string): void {
  if (!isPlain(obj) || !Array.isArray(obj[listKey])) return;
  obj[listKey].forEach((item: unknown, i: number) => inlineSecretFile(item, key, `${listKey}[${i}]`, base));
}

/**
 * The environment with each `<NAME>_FILE` of `names` read into `<NAME>` (a relative path is
 * relative to `cwd`). Both set is an error naming both; empty counts as unset, as for any variable.
 */
export function envWithSecretFiles(env: Env, names: readonly string[], cwd: string): Env {
  const out: Env = { ...env };
  for (const name of names) {
    const fileVar = `${name}_FILE`;
    const path = env[fileVar];
    if (!path) continue;
    if (env[name]) throw new ConfigError(name, `given together with ${fileVar}; give one or the other`);
    out[name] = secretFromFile(fileVar, absolutePath(path, cwd));
  }
  return out;
}
