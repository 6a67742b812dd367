// The `env_vars` part of a job definition: secrets and typed args. Both become environment
// variables on the run, so their names must be valid variable names and unique across both.

import { checkArgValue, compilePattern } from './args.js';
import { isRestrictedEnvName, restrictedEnvMessage } from './env-rules.js';
import { ARG_TYPES, type ArgSpec, type ArgType, type SecretSpec } from './job.js';
import { didYouMean } from '../util/suggest.js';
import { duplicates, fieldPath, itemPath, Problems, show, subject, type JsonObject } from './json-shape.js';

export const ENV_FIELDS = ['secrets', 'args'] as const;
export const SECRET_FIELDS = ['name', 'description', 'required'] as const;
export const ARG_FIELDS = ['name', 'description', 'required', 'type', 'values', 'default', 'pattern'] as const;

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isEnvName(s: string): boolean {
  return ENV_NAME_RE.test(s);
}

/**
 * Validates `env_vars` (may be absent or null) and returns normalised secrets and args. `allowed`:
 * the restricted names (env-rules.ts) the definition's `allow_env` lets it use.
 */
export function checkEnvVars(p: Problems, raw: unknown, allowed: readonly string[] = []): { secrets: SecretSpec[]; args: ArgSpec[] } {
  const out = { secrets: [] as SecretSpec[], args: [] as ArgSpec[] };
  if (raw === undefined || raw === null) return out;
  const env = p.object(raw, 'env_vars', 'an object with "secrets" and "args" lists');
  if (!env) return out;
  p.unknownFields(env, 'env_vars', ENV_FIELDS);

  const rawSecrets = p.array(env, 'secrets', 'env_vars', '[{"name": "API_TOKEN", "description": "…"}]') ?? [];
  const secretNames: Array<string | undefined> = [];
  rawSecrets.forEach((item, i) => {
    const s = checkSecret(p, item, itemPath('env_vars.secrets', i), allowed);
    secretNames.push(s?.name);
    if (s) out.secrets.push(s);
  });

  const rawArgs = p.array(env, 'args', 'env_vars', '[{"name": "COUNT", "description": "…", "required": true}]') ?? [];
  const argNames: Array<string | undefined> = [];
  rawArgs.forEach((item, i) => {
    const a = checkArg(p, item, itemPath('env_vars.args', i), allowed);
    argNames.push(a?.name);
    if (a) out.args.push(a);
  });

  for (const d of duplicates(secretNames, (n) => n)) {
    p.add(`env_vars.secrets[${d.index}].name`, `"${d.name}" is declared twice (also env_vars.secrets[${d.first}])`);
  }
  for (const d of duplicates(argNames, (n) => n)) {
    p.add(`env_vars.args[${d.index}].name`, `"${d.name}" is declared twice (also env_vars.args[${d.first}])`);
  }
  argNames.forEach((name, i) => {
    const j = name === undefined ? -1 : secretNames.indexOf(name);
    if (j >= 0) p.add(`env_vars.args[${i}].name`, `"${name}" is also declared as a secret (env_vars.secrets[${j}]); names must be unique`);
  });
  return out;
}

function checkName(p: Problems, obj: JsonObject, path: string, what: string, allowed: readonly string[]): string | undefined {
  const at = fieldPath(path, 'name');
  if (!p.has(obj, 'name')) {
    p.add(at, `missing; every ${what} needs a name (an environment variable name such as "${what === 'secret' ? 'API_TOKEN' : 'COUNT'}")`);
    return undefined;
  }
  const name = p.string(obj, 'name', path);
  if (name === undefined) return undefined;
  if (!isEnvName(name)) {
    const fixed = name.replace(/[^A-Za-z0-9_]/g, '_').replace(/^(?=[0-9])/, '_');
    const hint = fixed && isEnvName(fixed) ? ` (e.g. "${fixed}")` : '';
    p.add(at, `${show(name)} is not a valid environment variable name: letters, digits and "_", not starting with a digit${hint}`);
    return undefined;
  }
  // Still returned: templates naming it should not fail as well.
  if (isRestrictedEnvName(name) && !allowed.includes(name)) p.add(at, restrictedEnvMessage(name));
  return name;
}

function checkSecret(p: Problems, raw: unknown, path: string, allowed: readonly string[]): SecretSpec | undefined {
  const obj = p.object(raw, path, 'an object such as {"name": "API_TOKEN", "description": "…"}');
  if (!obj) return undefined;
  p.unknownFields(obj, path, SECRET_FIELDS);
  const name = checkName(p, obj, path, 'secret', allowed);
  const description = p.string(obj, 'description', path) ?? '';
  const required = p.bool(obj, 'required', path) ?? false;
  return name === undefined ? undefined : { name, description, required };
}

function checkArg(p: Problems, raw: unknown, path: string, allowed: readonly string[]): ArgSpec | undefined {
  const obj = p.object(raw, path, 'an object such as {"name": "COUNT", "description": "…", "required": true}');
  if (!obj) return undefined;
  p.unknownFields(obj, path, ARG_FIELDS);
  const name = checkName(p, obj, path, 'argument', allowed);
  const description = p.string(obj, 'description', path) ?? '';
  const required = p.bool(obj, 'required', path) ?? false;

  let type: ArgType | undefined = 'string';
  if (p.has(obj, 'type')) {
    const t = p.string(obj, 'type', path);
    type = t !== undefined && (ARG_TYPES as readonly string[]).includes(t) ? (t as ArgType) : undefined;
    if (t !== undefined && type === undefined) {
      p.add(fieldPath(path, 'type'), `${show(t)} is not one of ${ARG_TYPES.join(', ')}${suggestType(t)}`);
    }
  }

  const spec: ArgSpec = { name: name ?? '', description, required, type: type ?? 'string' };

  // values: required for enum, forbidden otherwise (skipped when the type itself is wrong).
  if (type === 'enum') {
    const values = checkValues(p, obj, path);
    if (values) spec.values = values;
  } else if (type !== undefined && p.has(obj, 'values')) {
    p.add(fieldPath(path, 'values'), `only allowed when type is "enum" (this argument's type is "${type}")`);
  }

  let patternOk = true;
  if (p.has(obj, 'pattern')) {
    const pattern = p.string(obj, 'pattern', path);
    patternOk = false;
    if (pattern !== undefined) {
      try {
        compilePattern(pattern);
        spec.pattern = pattern;
        patternOk = true;
      } catch (err) {
        const why = err instanceof Error ? err.message.replace(/^.*: /, '') : String(err);
        p.add(fieldPath(path, 'pattern'), `${show(pattern)} is not a valid regular expression: ${why}`);
      }
    }
  }

  if (p.has(obj, 'default') && type !== undefined && patternOk && (type !== 'enum' || spec.values)) {
    const d = checkDefault(p, obj.default, spec, fieldPath(path, 'default'));
    if (d !== undefined) spec.default = d;
  }

  // Keep a named arg even when other fields are wrong, so templates naming it do not also fail.
  return name === undefined ? undefined : spec;
}

const TYPE_ALIASES: Record<string, ArgType> = { number: 'int', integer: 'int', boolean: 'bool', text: 'string', choice: 'enum' };

/** Edit distance misses "integer" → "int", so prefixes and common aliases count too. */
function suggestType(t: string): string {
  const lower = t.toLowerCase();
  const hit = (Object.hasOwn(TYPE_ALIASES, lower) ? TYPE_ALIASES[lower] : undefined) ?? ARG_TYPES.find((c) => lower.length >= 3 && (lower.startsWith(c) || c.startsWith(lower)));
  return hit ? ` (did you mean "${hit}"?)` : didYouMean(t, ARG_TYPES);
}

function checkValues(p: Problems, obj: JsonObject, path: string): string[] | undefined {
  const at = fieldPath(path, 'values');
  if (!p.has(obj, 'values')) {
    p.add(at, 'missing; an enum argument needs its allowed values, e.g. ["small", "large"]');
    return undefined;
  }
  const values = p.stringArray(obj, 'values', path, '["small", "large"]');
  if (values === undefined) return undefined;
  if (values.length === 0 && (obj.values as unknown[]).length === 0) {
    p.add(at, 'must list at least one allowed value, e.g. ["small", "large"]');
    return undefined;
  }
  for (const d of duplicates(values, (v) => v)) p.add(at, `${show(d.name)} is listed twice`);
  return [...new Set(values)];
}

function checkDefault(p: Problems, raw: unknown, spec: ArgSpec, path: string): string | undefined {
  let value: string;
  if (typeof raw === 'string') value = raw;
  else if ((typeof raw === 'number' || typeof raw === 'boolean') && (spec.type === 'int' || spec.type === 'bool')) {
    value = String(raw);
  } else {
    const hint = typeof raw === 'number' || typeof raw === 'boolean' ? ` (write "${String(raw)}")` : '';
    p.add(path, `${subject(raw)} must be a string${hint}`);
    return undefined;
  }
  const r = checkArgValue(spec, value);
  if (!r.ok) {
    p.add(path, r.message);
    return undefined;
  }
  return r.value;
}
