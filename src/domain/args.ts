// Execute-time arguments: checked against the job definition (declared, required, typed,
// patterned), defaults applied, secrets split off. Also the CLI's `K=V` and `K=V,K2=V2` parser.

import { ValidationError, type Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import type { ArgSpec, JobDefinition } from './job.js';
import { argSizeProblems, type Limits } from './limits.js';

const INT_RE = /^[+-]?\d+$/;
const TRUE_WORDS = ['true', '1', 'yes'];
const FALSE_WORDS = ['false', '0', 'no'];

/** Compiles an arg pattern so that it must match the whole value. Throws SyntaxError when invalid. */
export function compilePattern(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

/**
 * Checks one value against an arg's type, values and pattern. Returns the normalised value
 * (bools become "true"/"false") or a message such as `"ten" is not an int; …`.
 */
export function checkArgValue(spec: ArgSpec, value: string): { ok: true; value: string } | { ok: false; message: string } {
  const shown = JSON.stringify(value);
  let v = value;
  switch (spec.type) {
    case 'int':
      if (!INT_RE.test(v)) return { ok: false, message: `${shown} is not an int; use a whole number such as 3 or -1` };
      break;
    case 'bool': {
      const lower = v.trim().toLowerCase();
      if (TRUE_WORDS.includes(lower)) v = 'true';
      else if (FALSE_WORDS.includes(lower)) v = 'false';
      else return { ok: false, message: `${shown} is not a bool; use true or false (1, 0, yes and no also work)` };
      break;
    }
    case 'enum': {
      const values = spec.values ?? [];
      if (!values.includes(v)) {
        return { ok: false, message: `${shown} is not one of ${values.join(', ')}${didYouMean(v, values)}` };
      }
      break;
    }
    case 'string':
      break;
  }
  if (spec.pattern !== undefined) {
    let re: RegExp;
    try {
      re = compilePattern(spec.pattern);
    } catch {
      return { ok: false, message: `cannot be checked: the definition's pattern ${JSON.stringify(spec.pattern)} is not a valid regular expression` };
    }
    if (!re.test(v)) {
      return { ok: false, message: `${shown} does not match the pattern ${JSON.stringify(spec.pattern)} (the whole value must match)` };
    }
  }
  return { ok: true, value: v };
}

/**
 * Validates `given` (args and secrets by name) against the definition and applies defaults.
 * Throws one ValidationError listing every problem, with paths like `args.COUNT`. A dry run
 * passes `requireSecrets: false`: it runs nothing, so it should not need a password typed in.
 * With `limits`, values over them are refused first, before any pattern runs over them.
 */
export function resolveArgs(
  def: JobDefinition,
  given: Record<string, string>,
  opts: { requireSecrets?: boolean; limits?: Pick<Limits, 'arg_bytes' | 'execution_args_bytes'> } = {},
): { args: Record<string, string>; secrets: Record<string, string> } {
  const tooLarge = opts.limits ? argSizeProblems(given, opts.limits) : [];
  if (tooLarge.length) throw new ValidationError(tooLarge);
  const problems: Problem[] = [];
  const specs = new Map(def.env_vars.args.map((a) => [a.name, a]));
  const secretNames = new Set(def.env_vars.secrets.map((s) => s.name));
  // Maps, not object literals, so a key such as "__proto__" stays an ordinary key.
  const args = new Map<string, string>();
  const secrets = new Map<string, string>();

  for (const [key, value] of Object.entries(given)) {
    const path = `args.${key}`;
    if (secretNames.has(key)) {
      secrets.set(key, value);
      continue;
    }
    const spec = specs.get(key);
    if (!spec) {
      const declared = [...specs.keys(), ...secretNames];
      const hint = didYouMean(key, declared);
      const list = declared.length ? `; it declares ${declared.join(', ')}` : '; it declares no arguments';
      problems.push({ path, message: `not declared by job "${def.name}"${hint || list}` });
      continue;
    }
    if (typeof value !== 'string') {
      problems.push({ path, message: `${JSON.stringify(value)} must be a string` });
      continue;
    }
    const r = checkArgValue(spec, value);
    if (r.ok) args.set(key, r.value);
    else problems.push({ path, message: r.message });
  }

  for (const spec of def.env_vars.args) {
    if (Object.hasOwn(given, spec.name)) continue;
    if (spec.default !== undefined) args.set(spec.name, spec.default);
    else if (spec.required) {
      const about = spec.description ? ` (${spec.description})` : '';
      problems.push({ path: `args.${spec.name}`, message: `missing; job "${def.name}" requires it${about}` });
    }
  }
  for (const spec of def.env_vars.secrets) {
    if (!spec.required || opts.requireSecrets === false || Object.hasOwn(given, spec.name)) continue;
    const about = spec.description ? ` (${spec.description})` : '';
    problems.push({
      path: `args.${spec.name}`,
      message: `missing; job "${def.name}" requires this secret${about}; pass it from a file or stdin, e.g. grid-cli execute ${def.name} --arg ${spec.name}=@FILE`,
    });
  }

  if (problems.length) throw new ValidationError(problems);
  return { args: Object.fromEntries(args), secrets: Object.fromEntries(secrets) };
}

/**
 * Parses grid-cli's `--arg` items (`K=V`: the value is everything after the first "=", commas
 * included) and `--args` items (Octavius's `K=V,K2=V2`, where a part after a comma without "="
 * belongs to the previous value: `LIST=a,b` gives LIST "a,b"). Values are returned as written;
 * errors name keys and positions, never a value, since it may be a secret.
 */
export function parseArgPairs(items: { arg?: readonly string[]; args?: readonly string[] }): Record<string, string> {
  const problems: Problem[] = [];
  const out = new Map<string, string>();
  const seenIn = new Map<string, string>();
  const add = (flag: string, key: string, value: string): void => {
    if (out.has(key)) problems.push({ path: `args.${key}`, message: `given more than once (${seenIn.get(key)} and ${flag}); give it once` });
    seenIn.set(key, flag);
    out.set(key, value);
  };
  // An item is named by its position: it may be a secret typed without its "KEY=".
  const nth = (flag: string, i: number): string => `${flag} #${i + 1}`;
  const emptyName = (flag: string): Problem => ({ path: 'args', message: `${flag} has an empty name; write KEY=VALUE` });
  const notPair = (flag: string, eg: string): Problem => ({ path: 'args', message: `${flag} has no "="; write KEY=VALUE, e.g. ${eg}` });

  (items.arg ?? []).forEach((item, i) => {
    const eq = item.indexOf('=');
    const key = eq < 0 ? '' : item.slice(0, eq).trim();
    if (eq < 0) problems.push(notPair(nth('--arg', i), 'COUNT=3'));
    else if (key === '') problems.push(emptyName(nth('--arg', i)));
    else add(`--arg ${key}=…`, key, item.slice(eq + 1));
  });
  (items.args ?? []).forEach((item, i) => {
    let current: string | undefined;
    for (const part of item.split(',')) {
      const eq = part.indexOf('=');
      if (eq < 0) {
        if (current === undefined) {
          problems.push(notPair(nth('--args', i), 'COUNT=3,MODE=fast'));
          break;
        }
        out.set(current, `${out.get(current)},${part}`);
        continue;
      }
      const key = part.slice(0, eq).trim();
      if (key === '') {
        problems.push(emptyName(nth('--args', i)));
        break;
      }
      add(`--args ${key}=…`, key, part.slice(eq + 1));
      current = key;
    }
  });
  if (problems.length) throw new ValidationError(problems);
  return Object.fromEntries(out);
}
