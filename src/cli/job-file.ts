// Job definition files as grid-cli reads them for create and apply: metadata.json or YAML, from a
// file or stdin. They are checked here with the domain's own rules before anything is sent, and
// every problem points at its line and column (`job.yaml:7:13: env_vars.args[0].type: …`).

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { absolutePath } from '../config/checks.js';
import type { JobDefinition } from '../domain/job.js';
import { validateJobDefinition } from '../domain/jobdef.js';
import { show } from '../domain/json-shape.js';
import { ValidationError, type Problem } from '../errors.js';
import { lineColumn, parseJsonText } from '../util/json-text.js';
import type { CliStdin } from './arg-values.js';

/** YAML is larger than the JSON it becomes; the controller holds the JSON to its own limit. */
const MAX_FILE_BYTES = 4 * 1024 * 1024;

export type JobFileFormat = 'json' | 'yaml';

export interface JobFile {
  /** The file's name in messages: its path as given, or "stdin". */
  source: string;
  format: JobFileFormat;
  /** The definition as written, without `version`: what is sent to the controller, as JSON. */
  raw: Record<string, unknown>;
  /** The same, normalised by the domain's rules (runner inferred, defaults filled). */
  definition: JobDefinition;
  /** `version:` in the file (describe prints it): the version the edit was made from. */
  version?: number;
}

/** `.yaml`/`.yml` is YAML, `.json` JSON; otherwise JSON if the first non-space character is "{". */
export function detectFormat(text: string, source: string): JobFileFormat {
  const ext = extname(source).toLowerCase();
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  if (ext === '.json') return 'json';
  return text.trimStart().replace(/^\ufeff/, '').startsWith('{') ? 'json' : 'yaml';
}

/** Reads FILE (`-`: stdin) and parses it with parseJobFile. */
export async function readJobFile(path: string, io: { cwd: string; stdin?: CliStdin }, command: string): Promise<JobFile> {
  if (path === '-') {
    if (!io.stdin || io.stdin.isTTY) throw new ValidationError(`${command}: "-" reads the definition from stdin; pipe it in, e.g. grid-cli describe NAME -o yaml | grid-cli ${command} -f -`);
    return parseJobFile(await io.stdin.readAll(MAX_FILE_BYTES), 'stdin');
  }
  let text: string;
  try {
    text = await readFile(absolutePath(path, io.cwd), 'utf8');
  } catch (err) {
    throw new ValidationError(`${command}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseJobFile(text, path);
}

/**
 * Parses and validates a definition. Syntax errors, duplicate YAML keys, a bad `version` and every
 * problem the domain finds are one ValidationError, each problem prefixed with `source:line:col`.
 */
export function parseJobFile(text: string, source: string, format: JobFileFormat = detectFormat(text, source)): JobFile {
  const { value, doc } = format === 'json' ? parseJson(text, source) : parseYaml(text, source);
  const at = (path: string) => locate(text, doc, path, source);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw located([{ path: '', message: `a job definition must be a map of fields (name: …), not ${show(value)}` }], at);
  }
  const { version: rawVersion, ...raw } = value as Record<string, unknown>;
  const problems: Problem[] = [];
  let version: number | undefined;
  if (rawVersion !== undefined && rawVersion !== null) {
    if (typeof rawVersion === 'number' && Number.isInteger(rawVersion) && rawVersion >= 1) version = rawVersion;
    else problems.push({ path: 'version', message: `${show(rawVersion)} must be a whole number from 1, the version grid-cli describe printed (or leave it out)` });
  }
  let definition: JobDefinition | undefined;
  try {
    definition = validateJobDefinition(raw);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problems.push(...err.problems);
  }
  if (problems.length || !definition) throw located(problems, at);
  return { source, format, raw, definition, ...(version !== undefined ? { version } : {}) };
}

function parseJson(text: string, source: string): { value: unknown; doc?: Document } {
  const parsed = parseJsonText(text);
  if (!parsed.ok) throw new ValidationError([{ path: `${source}:${parsed.line}:${parsed.column}`, message: parsed.message }]);
  // JSON is YAML too: the YAML parser gives the nodes' positions for the problems found later.
  const doc = parseDocument(text.replace(/^\ufeff/, ' '), { prettyErrors: false });
  return { value: parsed.value, doc: doc.errors.length ? undefined : doc };
}

function parseYaml(text: string, source: string): { value: unknown; doc: Document } {
  // YAML 1.2 core schema: "yes" and "no" stay strings, and a key written twice is an error.
  const doc = parseDocument(text, { prettyErrors: false, uniqueKeys: true, version: '1.2' });
  // The first error only: the ones after it are mostly the parser losing its way.
  const e = doc.errors[0];
  if (e) {
    const { line, column } = lineColumn(text, e.pos[0]);
    const message = e.code === 'DUPLICATE_KEY' ? `duplicate key ${keyAt(text, e.pos[0])}; each key may appear once in a map` : e.message;
    throw new ValidationError([{ path: `${source}:${line}:${column}`, message }]);
  }
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }), doc };
  } catch (err) {
    throw new ValidationError(`${source}: ${(err as Error).message}`);
  }
}

/** The key written at `pos`, quoted for a message. */
function keyAt(text: string, pos: number): string {
  const written = /^(?:"[^"\n]*"|'[^'\n]*'|[^:\n#,}]+)/.exec(text.slice(pos))?.[0].trim() ?? '';
  return /^["']/.test(written) ? written : JSON.stringify(written);
}

/** Each problem's path becomes `source:line:col: path`, in the order of the file. */
function located(problems: Problem[], at: (path: string) => { where: string; offset: number }): ValidationError {
  const list = problems
    .map((p) => ({ p, ...at(p.path) }))
    .sort((a, b) => a.offset - b.offset)
    .map(({ p, where }) => ({ path: p.path ? `${where}: ${p.path}` : where, message: p.message }));
  return new ValidationError(list);
}

/** Where a problem's field path is in the file: its value's node, else the deepest node on the path that exists. */
function locate(text: string, doc: Document | undefined, path: string, source: string): { where: string; offset: number } {
  const node = doc ? nodeAt(doc.contents as Node | null, path) : undefined;
  if (!node?.range) return { where: source, offset: -1 };
  const { line, column } = lineColumn(text, node.range[0]);
  return { where: `${source}:${line}:${column}`, offset: node.range[0] };
}

/**
 * The node a field path such as `env_vars.args[0].type` or `node_selector.kubernetes.io/arch`
 * names. Keys may hold dots, so at each map the longest key that the rest of the path starts with
 * is taken.
 */
export function nodeAt(root: Node | null, path: string): Node | undefined {
  let node: Node | null = root;
  let rest = path;
  while (node && rest !== '') {
    if (rest.startsWith('.')) rest = rest.slice(1);
    const index = /^\[(\d+)\]/.exec(rest);
    if (index) {
      const item: unknown = isSeq(node) ? node.items[Number(index[1])] : undefined;
      if (!item) return node;
      node = item as Node;
      rest = rest.slice(index[0].length);
      continue;
    }
    if (!isMap(node)) return node;
    let best: { key: string; value: Node | null } | undefined;
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      const fits = rest === key || rest.startsWith(`${key}.`) || rest.startsWith(`${key}[`);
      if (fits && key.length > (best?.key.length ?? -1)) best = { key, value: (pair.value as Node | null) ?? (pair.key as Node) };
    }
    if (!best) return node;
    node = best.value;
    rest = rest.slice(best.key.length);
  }
  return node ?? undefined;
}
