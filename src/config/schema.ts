// The small schema mechanism behind GRID's configuration: typed fields, one decoder for file and
// flag values, one for environment variables, and layer merging (defaults → file → env → flags).
// Every error is a ConfigError naming the key (dotted path, flag or variable) and what is valid.
import { ConfigError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';

export type Kind = 'string' | 'int' | 'number' | 'bool' | 'enum' | 'list' | 'map' | 'object' | 'objects';
export type StringMap = Record<string, string>;
export type Env = Record<string, string | undefined>;
/** Layers other than defaults give only some keys; nested objects may be partial too. */
export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** Flags may give any key, nested keys too; a string is also accepted in its env form ("8", "a,b", "k=v"). */
export type Flags<T> = T extends readonly unknown[]
  ? T | string
  : T extends object
    ? { [K in keyof T]?: Flags<T[K]> }
    : T | string;

export interface LoadOptions<C> {
  /** A file given explicitly; missing is an error. */
  file?: string;
  env?: Env;
  /** Values from the command line; undefined entries are ignored. */
  flags?: Flags<C>;
  /** Base for relative paths from env and flags (default process.cwd()). */
  cwd?: string;
}

export interface Field<T> {
  readonly kind: Kind;
  /** Absent and not required: this value (object fields default field by field). */
  readonly default?: T;
  /** Only meaningful inside a list of objects, where each item is given whole. */
  readonly required?: boolean;
  /** The environment variable; false = none. Top-level keys get one from the loader's prefix. */
  readonly env?: string | false;
  /** Other accepted spellings of the key (older names). */
  readonly aliases?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly minLength?: number;
  /** enum: the allowed values; list: the allowed items. */
  readonly values?: readonly string[];
  /** object / list of objects: the fields of one object. */
  readonly fields?: Schema;
  /** Extra rule on the whole value: what is wrong and what is valid, or undefined. */
  check?(value: T): string | undefined;
  /** Extra rule on each item of a string list. */
  each?(item: string): string | undefined;
  /** Never set: carries the decoded type for Infer. */
  readonly __type?: T;
}

export type Schema = { readonly [key: string]: Field<any> };
export type Infer<S extends Schema> = { -readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

type Opts<T> = Pick<Field<T>, 'default' | 'required' | 'env' | 'aliases' | 'check'>;

/** Field builders: `t.int({ default: 30, min: 2 })`, `t.enum(['a', 'b'], { default: 'a' })`, … */
export const t = {
  string: (o: Opts<string> & { minLength?: number } = {}): Field<string> => ({ kind: 'string', ...o }),
  int: (o: Opts<number> & { min?: number; max?: number } = {}): Field<number> => ({ kind: 'int', ...o }),
  number: (o: Opts<number> & { min?: number; max?: number } = {}): Field<number> => ({ kind: 'number', ...o }),
  bool: (o: Opts<boolean> = {}): Field<boolean> => ({ kind: 'bool', ...o }),
  enum: <const V extends string>(values: readonly V[], o: Opts<V> = {}): Field<V> => ({ kind: 'enum', values, ...o }),
  /** A list of strings; env and text flags use the comma-separated form `a,b,c`. */
  list: <const V extends string = string>(
    o: Opts<V[]> & { values?: readonly V[]; each?: (item: string) => string | undefined } = {},
  ): Field<V[]> => ({ kind: 'list', ...o }),
  /** A map of strings; env and text flags use the form `k=v,k2=v2`. */
  map: (o: Opts<StringMap> = {}): Field<StringMap> => ({ kind: 'map', ...o }),
  object: <S extends Schema>(fields: S, o: Pick<Opts<Infer<S>>, 'aliases'> = {}): Field<Infer<S>> => ({ kind: 'object', fields, ...o }),
  objects: <S extends Schema>(fields: S, o: Opts<Infer<S>[]> = {}): Field<Infer<S>[]> => ({ kind: 'objects', fields, ...o }),
};

export type Origin = 'file' | 'env' | 'flags';
/** Where a value came from: `key` is the dotted path (file, flags) or the variable (env). */
interface At {
  key: string;
  origin: Origin;
}

const label = (at: At): string => (at.origin === 'flags' ? `flag ${at.key}` : at.key);
const fail = (at: At, message: string): never => {
  throw new ConfigError(label(at), message);
};
/** Sub-keys of an env value still name the variable: that is what the operator can change. */
const child = (at: At, suffix: string): At =>
  at.origin === 'env' ? at : { ...at, key: suffix.startsWith('[') || at.key === '' ? at.key + suffix : `${at.key}.${suffix}` };
const isPlain = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Short, quoted rendering of a wrong value for an error message. */
export function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/** Decodes a file's object or a program's flags into a partial config; unknown keys are errors. */
export function decodeLayer(schema: Schema, raw: unknown, origin: 'file' | 'flags'): Record<string, unknown> {
  if (raw === undefined) return {};
  return decodeObject(schema, raw, { key: '', origin }, false);
}

function decodeObject(schema: Schema, raw: unknown, at: At, whole: boolean): Record<string, unknown> {
  if (!isPlain(raw)) return fail(at, `${show(raw)} must be an object ({ "key": value, ... })`);
  const out: Record<string, unknown> = {};
  const givenAs = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue; // an option the user did not give
    const name = key in schema ? key : Object.keys(schema).find((k) => schema[k]!.aliases?.includes(key));
    const here = child(at, key);
    if (name === undefined) {
      const names = Object.keys(schema);
      const hint = didYouMean(key, names);
      fail(here, `unknown key${hint || `; valid keys are: ${names.join(', ')}`}`);
    } else {
      if (givenAs.has(name)) fail(here, `"${key}" and "${givenAs.get(name)}" are the same setting; give only one`);
      givenAs.set(name, key);
      out[name] = decodeValue(schema[name]!, value, here);
    }
  }
  if (whole) {
    for (const [name, f] of Object.entries(schema)) {
      if (name in out) continue;
      if (f.required) fail(child(at, name), `missing; this key is required${f.values ? ` (one of ${quoteAll(f.values)})` : ''}`);
      out[name] = defaultOf(f);
    }
  }
  return out;
}

const quoteAll = (vs: readonly string[]): string => vs.map((v) => JSON.stringify(v)).join(', ');

function range(f: Field<unknown>): string {
  if (f.min !== undefined && f.max !== undefined) return ` from ${f.min} to ${f.max}`;
  if (f.min !== undefined) return ` ≥ ${f.min}`;
  return f.max !== undefined ? ` ≤ ${f.max}` : '';
}

function oneOf(f: Field<unknown>, v: unknown, at: At): string {
  if (typeof v === 'string' && f.values!.includes(v)) return v;
  const hint = typeof v === 'string' ? didYouMean(v, f.values!) : '';
  return fail(at, `${show(v)} must be one of ${quoteAll(f.values!)}${hint}`);
}

function decodeValue(f: Field<unknown>, value: unknown, at: At): unknown {
  if (at.origin !== 'file' && typeof value === 'string') value = fromText(f, value, at);
  let v: unknown = value;
  switch (f.kind) {
    case 'string':
      if (typeof value !== 'string') fail(at, `${show(value)} must be a string (in double quotes)`);
      else if (f.minLength !== undefined && value.length < f.minLength) {
        // Never echo the value: short strings with a minimum length are usually secrets.
        fail(at, `must be at least ${f.minLength} characters long (got ${value.length})`);
      }
      break;
    case 'int':
    case 'number': {
      const whole = f.kind === 'int';
      const ok =
        typeof value === 'number' &&
        (whole ? Number.isSafeInteger(value) : Number.isFinite(value)) &&
        (f.min === undefined || value >= f.min) &&
        (f.max === undefined || value <= f.max);
      if (!ok) fail(at, `${show(value)} must be ${whole ? 'a whole number' : 'a number'}${range(f)}`);
      break;
    }
    case 'bool':
      if (typeof value !== 'boolean') fail(at, `${show(value)} must be true or false`);
      break;
    case 'enum':
      v = oneOf(f, value, at);
      break;
    case 'list':
      if (!Array.isArray(value)) return fail(at, `${show(value)} must be a list of strings, e.g. ["a", "b"]`);
      v = value.map((item: unknown, i) => {
        const here = child(at, `[${i}]`);
        if (f.values) return oneOf(f, item, here);
        if (typeof item !== 'string') return fail(here, `${show(item)} must be a string`);
        const problem = f.each?.(item);
        return problem ? fail(here, problem) : item;
      });
      break;
    case 'map':
      if (!isPlain(value)) return fail(at, `${show(value)} must be an object of strings, e.g. { "zone": "eu-1" }`);
      for (const [k, item] of Object.entries(value)) {
        if (typeof item !== 'string') fail(child(at, k), `${show(item)} must be a string (quote it: ${show(String(item))})`);
      }
      v = { ...value };
      break;
    case 'object':
      return decodeObject(f.fields!, value, at, false);
    case 'objects':
      if (!Array.isArray(value)) return fail(at, `${show(value)} must be a list of objects`);
      v = value.map((item: unknown, i) => decodeObject(f.fields!, item, child(at, `[${i}]`), true));
      break;
  }
  const problem = f.check?.(v);
  return problem ? fail(at, problem) : v;
}

/** The text forms used by env vars and string-valued flags. Unparseable text is returned as is so the type check reports it quoted. */
function fromText(f: Field<unknown>, text: string, at: At): unknown {
  switch (f.kind) {
    case 'int':
    case 'number':
      return text.trim() !== '' && Number.isFinite(Number(text)) ? Number(text) : text;
    case 'bool':
      if (/^(true|1|yes|on)$/i.test(text.trim())) return true;
      if (/^(false|0|no|off)$/i.test(text.trim())) return false;
      return text;
    case 'list':
      return splitList(text);
    case 'map': {
      const out: StringMap = {};
      for (const pair of splitList(text)) {
        const eq = pair.indexOf('=');
        if (eq <= 0) fail(at, `${show(pair)} must be key=value; the form is "k=v,k2=v2"`);
        out[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
      }
      return out;
    }
    case 'object':
    case 'objects':
      return fail(at, 'cannot be given as text; set it in the config file');
    default:
      return text;
  }
}

export const splitList = (text: string): string[] =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');

/** Environment variables of a schema: explicit `env` names, plus `prefix + KEY` for top-level non-object keys. */
export function envVariables(schema: Schema, prefix?: string): Array<{ name: string; path: string[]; field: Field<unknown> }> {
  const out: Array<{ name: string; path: string[]; field: Field<unknown> }> = [];
  const walk = (s: Schema, path: string[]): void => {
    for (const [key, f] of Object.entries(s)) {
      if (f.kind === 'object') walk(f.fields!, [...path, key]);
      else if (f.env !== false) {
        const derived = path.length === 0 && prefix !== undefined && f.kind !== 'objects' ? prefix + key.toUpperCase() : undefined;
        const name = f.env ?? derived;
        if (name !== undefined) out.push({ name, path: [...path, key], field: f });
      }
    }
  };
  walk(schema, []);
  return out;
}

/** Decodes the environment into a partial config. An empty variable counts as unset. */
export function envLayer(schema: Schema, env: Env, prefix?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { name, path, field } of envVariables(schema, prefix)) {
    const text = env[name];
    if (text === undefined || text === '') continue;
    let node = out;
    for (const p of path.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[path[path.length - 1]!] = decodeValue(field, text, { key: name, origin: 'env' });
  }
  return out;
}

function defaultOf(f: Field<unknown>): unknown {
  if (f.kind === 'object') return defaultsOf(f.fields!);
  if (f.default !== undefined) return structuredClone(f.default);
  return { string: '', int: 0, number: 0, bool: false, enum: f.values?.[0], list: [], map: {}, objects: [] }[f.kind];
}

export function defaultsOf(schema: Schema): Record<string, unknown> {
  return Object.fromEntries(Object.entries(schema).map(([k, f]) => [k, defaultOf(f)]));
}

/** Later layers win key by key inside objects; lists and maps are replaced whole. */
export function merge(schema: Schema, base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    const f = schema[k];
    out[k] = f?.kind === 'object' && isPlain(v) && isPlain(base[k]) ? merge(f.fields!, base[k], v) : v;
  }
  return out;
}

/** Defaults, then each decoded layer in order. */
export function resolveLayers<S extends Schema>(schema: S, ...layers: Array<Record<string, unknown>>): Infer<S> {
  return layers.reduce((acc, layer) => merge(schema, acc, layer), defaultsOf(schema)) as Infer<S>;
}
