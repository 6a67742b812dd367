// Value rules shared by the config schemas. Each returns what is wrong and what is valid, or
// undefined when the value is fine, so the schema can prefix the key.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

const show = (v: string): string => JSON.stringify(v);

/** `host:port` or `[v6]:port`, port 1–65535 (0 allowed when `allowZero`, for "any free port"). */
export function hostPort(v: string, allowZero = false): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]/]+):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : -1;
  if (!m || port > 65535 || (port === 0 && !allowZero)) {
    return `${show(v)} must be host:port, e.g. "127.0.0.1:7070"`;
  }
  return undefined;
}

/** A listen address may use port 0 (pick a free port), which tests rely on. */
export const listenAddress = (v: string): string | undefined => hostPort(v, true);

/** One DNS label: lowercase letters, digits and '-', 1–63 characters, no '-' at either end. */
export function dnsLabel(v: string): string | undefined {
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(v)
    ? undefined
    : `${show(v)} must be a DNS label: lowercase letters, digits and '-', at most 63 characters, starting and ending with a letter or digit`;
}

/** A DNS-like name: lowercase letters, digits, '-' and '.', at most 253 characters. */
export function dnsName(v: string): string | undefined {
  return v.length <= 253 && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(v)
    ? undefined
    : `${show(v)} must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit (at most 253 characters)`;
}

export function nonEmpty(v: string): string | undefined {
  return v.trim() === '' ? 'must not be empty' : undefined;
}

export function noDuplicates(v: readonly string[]): string | undefined {
  const dup = v.find((s, i) => v.indexOf(s) !== i);
  return dup === undefined ? undefined : `${show(dup)} is listed twice`;
}

/** Lowercases a host name and replaces what a DNS name cannot hold, for the executor's default name. */
export function toDnsName(host: string): string {
  const name = host
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, 253);
  return name === '' ? 'executor' : name;
}

/** Expands a leading `~/` and makes the path absolute against `base`. "" stays "". */
export function absolutePath(p: string, base: string): string {
  if (p === '') return p;
  if (p === '~' || p.startsWith('~/')) return join(homedir(), p.slice(1));
  return isAbsolute(p) ? p : resolve(base, p);
}
