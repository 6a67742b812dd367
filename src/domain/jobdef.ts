// metadata.json → JobDefinition. Accepts Octavius's format unchanged plus GRID's additions,
// normalises it (runner inferred, defaults filled) and reports every problem in one
// ValidationError, each naming the field path, the value and what would be valid.

import { ValidationError } from '../errors.js';
import { didYouMean } from '../util/suggest.js';
import { ON_LOST, RUNNERS, type FileRef, type OnLost, type JobDefinition, type RetryPolicy, type RunnerName } from './job.js';
import { checkEnvVars, isEnvName } from './jobdef-env.js';
import { checkPodFields, POD_FIELDS } from './jobdef-pod.js';
import { isRestrictedEnvName, RESTRICTED_ENV_SUMMARY, secretInArgvMessage } from './env-rules.js';
import { parseJsonText } from '../util/json-text.js';
import { duplicates, fieldPath, isObject, itemPath, Problems, show, subject, type JsonObject } from './json-shape.js';
import { formatTarget, targetProblems } from './target.js';

export const JOB_FIELDS = [
  // Octavius
  'name', 'description', 'image_name', 'author', 'contributors', 'organization', 'authorized_groups', 'env_vars',
  // GRID
  'runner', 'command', 'shell', 'timeout_seconds', 'retries', 'target', 'serialize', 'files', 'allow_env', 'on_lost',
  // GRID, kubernetes runner: the task's pod (jobdef-pod.ts)
  ...POD_FIELDS,
] as const;
const RETRY_FIELDS = ['max_attempts', 'backoff_seconds'] as const;
const FILE_FIELDS = ['name', 'path', 'template', 'mode'] as const;

const DNS_LABEL_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL_RULE = 'must be a DNS label: lowercase letters, digits and "-", starting with a letter, at most 63 characters';
const TEMPLATE_RE = /\{\{(.*?)\}\}/g;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS_LABEL_RE.test(s);
}

/** The names inside `{{…}}` templates in a string, trimmed, in order (may repeat). */
export function templateRefs(text: string): string[] {
  return [...text.matchAll(TEMPLATE_RE)].map((m) => m[1]!.trim());
}

/**
 * Parses metadata.json text. Syntax errors are reported as `line L, column C: …`; `source`
 * (e.g. the file's path) prefixes the error message when given.
 */
export function parseJobDefinition(text: string, source?: string): JobDefinition {
  const parsed = parseJsonText(text);
  if (!parsed.ok) {
    throw new ValidationError([{ path: '', message: `line ${parsed.line}, column ${parsed.column}: ${parsed.message}` }], {
      subject: source,
    });
  }
  return validateJobDefinition(parsed.value, source);
}

/** Validates an already-parsed definition with the same rules; returns it normalised. */
export function validateJobDefinition(obj: unknown, source?: string): JobDefinition {
  const p = new Problems();
  const def = checkDefinition(p, obj);
  if (p.count > 0 || def === undefined) throw new ValidationError(p.list, { subject: source });
  return def;
}

function checkDefinition(p: Problems, raw: unknown): JobDefinition | undefined {
  if (!isObject(raw)) {
    p.add('', `a job definition must be a JSON object ({"name": …}), not ${show(raw)}`);
    return undefined;
  }
  p.unknownFields(raw, '', JOB_FIELDS);

  const name = checkJobName(p, raw);
  const allowEnv = checkAllowEnv(p, raw);
  const beforeEnv = p.count;
  const allowed = allowEnv?.filter((n): n is string => n !== undefined) ?? [];
  const envVars = checkEnvVars(p, raw.env_vars, allowed);
  // When env_vars could not be read in full, an undeclared template name may just be unreadable.
  const envComplete = p.count === beforeEnv;
  const def: JobDefinition = {
    name: name ?? '',
    description: p.string(raw, 'description', '') ?? '',
    authorized_groups: p.stringArray(raw, 'authorized_groups', '', '["data-team"]') ?? [],
    env_vars: { secrets: [], args: [] },
    runner: 'host',
    files: checkFiles(p, raw),
  };

  const image = p.string(raw, 'image_name', '', { nonEmpty: true });
  if (image !== undefined) {
    if (/\s/.test(image)) p.add('image_name', `${show(image)} must not contain spaces`);
    else def.image_name = image;
  }
  const author = p.string(raw, 'author', '');
  if (author !== undefined) def.author = author;
  const contributors = checkContributors(p, raw);
  if (contributors !== undefined) def.contributors = contributors;
  const organization = p.string(raw, 'organization', '');
  if (organization !== undefined) def.organization = organization;

  def.env_vars = envVars;
  const secretNames = envVars.secrets.map((s) => s.name);
  const declared = envComplete ? [...envVars.args.map((a) => a.name), ...secretNames] : undefined;
  allowEnv?.forEach((n, i) => {
    if (n !== undefined && declared !== undefined && !declared.includes(n)) {
      p.add(itemPath('allow_env', i), `${show(n)} names no declared argument or secret; list only names the job takes`);
    }
  });
  if (allowed.length > 0) def.allow_env = [...new Set(allowed)];
  const command = checkCommand(p, raw, declared, secretNames);
  if (command !== undefined) def.command = command;
  const shell = p.string(raw, 'shell', '', { nonEmpty: true });
  if (shell !== undefined) {
    // Shell scripts get their values only as environment variables: rendering {{X}} into a
    // script would let an argument's value inject shell code.
    for (const m of shell.matchAll(TEMPLATE_RE)) {
      const ref = m[1]!.trim();
      p.add('shell', `${show(m[0])}: templates are not rendered in shell scripts (that would let a value inject code); use "$${ref}" instead, every argument is an environment variable`);
    }
    def.shell = shell;
  }
  if (p.has(raw, 'command') && p.has(raw, 'shell')) {
    p.add('shell', 'cannot be used together with "command"; give either command (an argv array) or shell (a script)');
  }
  const runner = checkRunner(p, raw);
  if (runner !== undefined) def.runner = runner;
  Object.assign(def, checkPodFields(p, raw, runner));

  const timeout = p.integer(raw, 'timeout_seconds', '', 1, 'a whole number of seconds');
  if (timeout !== undefined) def.timeout_seconds = timeout;
  const retries = checkRetries(p, raw);
  if (retries !== undefined) def.retries = retries;
  const target = checkTarget(p, raw);
  if (target !== undefined) def.target = target;
  const serialize = checkSerialize(p, raw, name);
  if (serialize !== undefined) def.serialize = serialize;
  const onLost = checkOnLost(p, raw);
  if (onLost !== undefined) def.on_lost = onLost;

  return name === undefined ? undefined : def;
}

function checkJobName(p: Problems, raw: JsonObject): string | undefined {
  if (!p.has(raw, 'name')) {
    p.add('name', 'missing; every job needs a name (a DNS label such as "hello-world")');
    return undefined;
  }
  const name = p.string(raw, 'name', '');
  if (name === undefined) return undefined;
  if (!isDnsLabel(name)) {
    p.add('name', dnsLabelMessage(name));
    return undefined;
  }
  return name;
}

function dnsLabelMessage(value: string): string {
  if (value.length > 63) return `${show(value)} ${DNS_LABEL_RULE}; it has ${value.length}`;
  if (/-$/.test(value) && DNS_LABEL_RE.test(value.replace(/-+$/, ''))) {
    return `${show(value)} ${DNS_LABEL_RULE}; it must not end with "-"`;
  }
  // Offer a fixed spelling only when it is the same name (case, "_" or spaces), not a different one.
  const fixed = value.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/-+$/, '');
  const example = /^[A-Za-z]/.test(value) && isDnsLabel(fixed) ? `, e.g. "${fixed}"` : '';
  return `${show(value)} ${DNS_LABEL_RULE}${example}`;
}

function checkContributors(p: Problems, raw: JsonObject): string[] | undefined {
  const v = raw.contributors;
  if (v === undefined || v === null) return undefined;
  // Octavius writes a comma-separated string; GRID also takes a list.
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return p.stringArray(raw, 'contributors', '', '"ada, grace" or ["ada", "grace"]')?.map((s) => s.trim());
}

/**
 * `declared` undefined: check template syntax only. A secret named in argv is refused: every
 * user of the host can read a process's argv (ps, /proc/<pid>/cmdline).
 */
function checkTemplates(p: Problems, text: string, path: string, declared: string[] | undefined, secrets: readonly string[]): void {
  for (const m of text.matchAll(TEMPLATE_RE)) {
    const ref = m[1]!.trim();
    if (secrets.includes(ref)) {
      p.add(path, secretInArgvMessage(ref));
    } else if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(ref)) {
      p.add(path, `${show(m[0])} is not a valid template; write {{NAME}} with the name of a declared argument or secret`);
    } else if (declared !== undefined && !declared.includes(ref)) {
      const known = declared.length ? `; declared: ${declared.join(', ')}` : '; the job declares no arguments or secrets';
      p.add(path, `{{${ref}}} names no declared argument or secret${didYouMean(ref, declared) || known}`);
    }
  }
}

function checkCommand(p: Problems, raw: JsonObject, declared: string[] | undefined, secrets: readonly string[]): string[] | undefined {
  const v = raw.command;
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) {
    const hint = typeof v === 'string' ? `; write it as an argv array, e.g. ${JSON.stringify(v.trim().split(/\s+/))}, or use "shell" for a script` : '';
    p.add('command', `${subject(v)} must be an array of strings${hint}`);
    return undefined;
  }
  if (v.length === 0) {
    p.add('command', 'must not be empty; give the program and its arguments, e.g. ["echo", "hello"]');
    return undefined;
  }
  let ok = true;
  v.forEach((item, i) => {
    const at = itemPath('command', i);
    if (typeof item !== 'string') {
      p.add(at, `${subject(item)} must be a string`);
      ok = false;
    } else if (i === 0 && item.trim() === '') {
      p.add(at, 'must name the program to run');
      ok = false;
    } else {
      checkTemplates(p, item, at, declared, secrets);
    }
  });
  return ok ? (v as string[]) : undefined;
}

/**
 * `allow_env`: the restricted environment names (env-rules.ts) this job may take as arguments
 * or secrets. Naming one that is not restricted is refused, so a typo cannot pass silently.
 */
function checkAllowEnv(p: Problems, raw: JsonObject): Array<string | undefined> | undefined {
  const arr = p.array(raw, 'allow_env', '', '["PATH"]');
  if (arr === undefined) return undefined;
  const names = arr.map((n, i) => {
    const at = itemPath('allow_env', i);
    if (typeof n !== 'string') p.add(at, `${subject(n)} must be a string such as "PATH"`);
    else if (!isEnvName(n)) p.add(at, `${show(n)} is not an environment variable name: letters, digits and "_", not starting with a digit`);
    else if (!isRestrictedEnvName(n)) p.add(at, `${show(n)} is not a restricted name and needs no allowing; only ${RESTRICTED_ENV_SUMMARY} do`);
    else return n;
    return undefined;
  });
  for (const d of duplicates(names, (x) => x)) p.add(itemPath('allow_env', d.index), `${show(d.name)} is listed twice (also allow_env[${d.first}])`);
  return names;
}

function checkRunner(p: Problems, raw: JsonObject): RunnerName | undefined {
  let runner: RunnerName | undefined;
  if (p.has(raw, 'runner')) {
    const r = p.string(raw, 'runner', '');
    if (r === undefined) return undefined;
    if (!(RUNNERS as readonly string[]).includes(r)) {
      p.add('runner', `${show(r)} is not one of ${RUNNERS.join(', ')}${didYouMean(r, RUNNERS)}`);
      return undefined;
    }
    runner = r as RunnerName;
  } else if (p.has(raw, 'image_name')) {
    runner = 'kubernetes';
  } else if (p.has(raw, 'command') || p.has(raw, 'shell')) {
    runner = 'host';
  } else {
    p.add(
      'runner',
      'missing and cannot be inferred; add "image_name" (a container image, run on Kubernetes) or ' +
        '"command" (an argv array such as ["echo", "hello"]) or "shell" (a script) to run on the executor\'s host',
    );
    return undefined;
  }
  // Presence, not validity: a wrongly typed field has been reported already.
  if (runner === 'kubernetes' && !p.has(raw, 'image_name')) {
    p.add('image_name', 'missing; the kubernetes runner needs a container image, e.g. "registry.example.com/hello:1.0"');
  }
  if (runner === 'kubernetes' && Array.isArray(raw.files) && raw.files.length > 0) {
    p.add('files', 'the kubernetes runner cannot place configuration files yet; bake them into the image or use the host runner');
  }
  if (runner === 'host' && !p.has(raw, 'command') && !p.has(raw, 'shell')) {
    p.add('command', 'missing; the host runner needs "command" (an argv array such as ["echo", "hello"]) or "shell" (a script)');
  }
  return runner;
}

function checkRetries(p: Problems, raw: JsonObject): RetryPolicy | undefined {
  if (!p.has(raw, 'retries')) return undefined;
  const r = p.object(raw.retries, 'retries', 'an object such as {"max_attempts": 3, "backoff_seconds": 10}');
  if (!r) return undefined;
  p.unknownFields(r, 'retries', RETRY_FIELDS);
  if (!p.has(r, 'max_attempts')) {
    p.add('retries.max_attempts', 'missing; say how many attempts in total, e.g. 3');
    return undefined;
  }
  const max = p.integer(r, 'max_attempts', 'retries', 1, 'a whole number of attempts');
  const backoff = p.number(r, 'backoff_seconds', 'retries', 0, 'a number of seconds') ?? 0;
  return max === undefined ? undefined : { max_attempts: max, backoff_seconds: backoff };
}

function checkTarget(p: Problems, raw: JsonObject): string | undefined {
  if (!p.has(raw, 'target')) return undefined;
  const text = raw.target;
  if (typeof text !== 'string') {
    p.add('target', `${subject(text)} must be a string such as "all", "group:web" or "any:gpu"`);
    return undefined;
  }
  const before = p.count;
  const t = targetProblems(text, 'target', p.list);
  return p.count === before ? formatTarget(t) : undefined;
}

function checkSerialize(p: Problems, raw: JsonObject, name: string | undefined): string | undefined {
  const v = raw.serialize;
  if (v === undefined || v === null || v === false) return undefined;
  if (v === true) return name;
  if (typeof v !== 'string') {
    p.add('serialize', `${subject(v)} must be true, false or a lock name (a DNS label such as "db-migrations")`);
    return undefined;
  }
  if (!isDnsLabel(v)) {
    p.add('serialize', `lock name ${dnsLabelMessage(v)}`);
    return undefined;
  }
  return v;
}

function checkOnLost(p: Problems, raw: JsonObject): OnLost | undefined {
  const v = raw.on_lost;
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string' && (ON_LOST as readonly string[]).includes(v)) return v as OnLost;
  const hint = typeof v === 'string' ? didYouMean(v, ON_LOST) : '';
  p.add('on_lost', `${subject(v)} must be one of ${ON_LOST.map((o) => `"${o}"`).join(', ')}: what happens to a task whose executor is lost while running it${hint}`);
  return undefined;
}

function checkFiles(p: Problems, raw: JsonObject): FileRef[] {
  const list = p.array(raw, 'files', '', '[{"name": "app.conf", "path": "conf/app.conf"}]');
  if (!list) return [];
  const out: FileRef[] = [];
  const paths: Array<string | undefined> = [];
  list.forEach((item, i) => {
    const at = itemPath('files', i);
    const f = checkFile(p, item, at);
    paths.push(f?.path);
    if (f) out.push(f);
  });
  for (const d of duplicates(paths, (x) => x)) {
    p.add(`files[${d.index}].path`, `${show(d.name)} is used twice (also files[${d.first}])`);
  }
  return out;
}

function checkFile(p: Problems, raw: unknown, at: string): FileRef | undefined {
  const obj = p.object(raw, at, 'an object such as {"name": "app.conf", "path": "conf/app.conf"}');
  if (!obj) return undefined;
  p.unknownFields(obj, at, FILE_FIELDS);
  if (!p.has(obj, 'name')) p.add(fieldPath(at, 'name'), 'missing; the name of the file in GRID\'s file store, e.g. "app.conf"');
  const name = p.string(obj, 'name', at, { nonEmpty: true });
  if (!p.has(obj, 'path')) p.add(fieldPath(at, 'path'), 'missing; where to put the file, relative to the job\'s working directory, e.g. "conf/app.conf"');
  const rawPath = p.string(obj, 'path', at, { nonEmpty: true });
  const path = rawPath === undefined ? undefined : checkRelativePath(p, rawPath, fieldPath(at, 'path'));
  const template = p.bool(obj, 'template', at) ?? false;
  let mode: string | undefined;
  if (p.has(obj, 'mode')) {
    const m = obj.mode;
    if (typeof m === 'string' && /^[0-7]{3,4}$/.test(m)) mode = m.padStart(4, '0');
    else {
      const hint = typeof m === 'number' && /^[0-7]{3,4}$/.test(String(m)) ? ` (write "${String(m).padStart(4, '0')}" in quotes)` : '';
      p.add(fieldPath(at, 'mode'), `${subject(m)} must be an octal mode string such as "0644" or "0755"${hint}`);
    }
  }
  if (name === undefined || path === undefined) return undefined;
  const f: FileRef = { name, path, template };
  if (mode !== undefined) f.mode = mode;
  return f;
}

/** Relative, inside the working directory: no leading "/", no drive letter, no ".." segment. */
function checkRelativePath(p: Problems, path: string, at: string): string | undefined {
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path) || path.includes('\\')) {
    p.add(at, `${show(path)} must be a relative path using "/", e.g. "conf/app.conf"`);
    return undefined;
  }
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) {
    p.add(at, `${show(path)} must not contain ".."; files stay inside the job's working directory`);
    return undefined;
  }
  if (segments.length === 0) {
    p.add(at, `${show(path)} must name a file, e.g. "conf/app.conf"`);
    return undefined;
  }
  return segments.join('/');
}
