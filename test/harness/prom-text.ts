// A strict reader of Prometheus's text exposition format (version 0.0.4), for tests of /metrics.
// The one npm parser of it (parse-prometheus-text-format 1.1.1) accepts lines that are not
// samples and merges a labelled histogram's series into one, so this follows the format's
// description instead and throws, naming the line, on anything Prometheus would refuse or a
// scrape should not show: a malformed line or label, a second TYPE or HELP for a name, a TYPE
// after its samples, a family's samples split apart, a series twice, a negative counter, a
// histogram whose buckets are not cumulative or whose +Inf bucket is not its _count.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name (`x_bucket`, `x_sum`, … for a histogram's series). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

export interface Exposition {
  families: Map<string, Family>;
  /** The value of the sample `name` with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Partial<Record<MetricType, string[]>> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

export function parsePromText(text: string): Exposition {
  const families = new Map<string, Family>();
  const seriesSeen = new Set<string>();
  const closed = new Set<string>();
  const typed = new Set<string>();
  const helped = new Set<string>();
  let current: Family | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  else if (text !== '') throw new Error('the exposition does not end with a newline');
  lines.forEach((line, i) => {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${JSON.stringify(line)}`);
    };
    const family = (name: string): Family => {
      if (!NAME.test(name)) fail(`${JSON.stringify(name)} is not a metric name`);
      let f = families.get(name);
      if (!f) families.set(name, (f = { name, type: 'untyped', help: '', samples: [] }));
      if (current !== f) {
        if (closed.has(name)) fail(`the samples of ${name} are split apart`);
        if (current) closed.add(current.name);
        current = f;
      }
      return f;
    };
    if (line.trim() === '') return;
    const meta = /^#\s*(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta;
      const f = family(name!);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest.trim())) fail(`${JSON.stringify(rest)} is not a metric type`);
        if (typed.has(f.name)) fail(`a second TYPE for ${name}`);
        if (f.samples.length) fail(`TYPE for ${name} after its samples`);
        f.type = rest.trim() as MetricType;
        typed.add(f.name);
      } else {
        if (helped.has(f.name)) fail(`a second HELP for ${name}`);
        f.help = unescape(rest, false, fail);
        helped.add(f.name);
      }
      return;
    }
    if (line.startsWith('#')) return; // a comment
    const m = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?\s*$/.exec(line);
    if (!m) fail('not a sample');
    const [, name, labelText, valueText] = m!;
    if (!NAME.test(name!)) fail(`${JSON.stringify(name)} is not a metric name`);
    const labels = parseLabels(labelText ?? '', fail);
    const value = parseValue(valueText!, fail);
    const base = familyName(name!, families, current);
    const f = family(base);
    const series = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seriesSeen.has(series)) fail('this series was given already');
    seriesSeen.add(series);
    if (f.type === 'counter' && !(value >= 0)) fail('a counter is negative or NaN');
    if (f.type === 'histogram' && name === `${base}_bucket` && labels.le === undefined) fail('a bucket without an le label');
    f.samples.push({ name: name!, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return {
    families,
    value(name, labels = {}) {
      const want = JSON.stringify(Object.entries(labels).sort());
      for (const f of families.values()) {
        for (const s of f.samples) if (s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want) return s.value;
      }
      return undefined;
    },
  };
}

/** The family a sample belongs to: its own name, or, for a histogram's or summary's series, the name without the suffix. */
function familyName(name: string, families: Map<string, Family>, current: Family | undefined): string {
  for (const f of [current, ...families.values()]) {
    if (!f) continue;
    if (f.name === name) return name;
    if ((SUFFIXES[f.type] ?? []).some((s) => name === f.name + s)) return f.name;
  }
  return name;
}

function parseLabels(text: string, fail: (why: string) => never): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text.trim();
  while (rest !== '') {
    const m = /^([^=\s]+)\s*=\s*"/.exec(rest);
    if (!m) fail(`cannot read the labels at ${JSON.stringify(rest)}`);
    const name = m![1]!;
    if (!LABEL.test(name) || name.startsWith('__')) fail(`${JSON.stringify(name)} is not a label name`);
    if (Object.hasOwn(labels, name)) fail(`label ${name} twice`);
    let i = m![0].length;
    let raw = '';
    for (;; i++) {
      if (i >= rest.length) fail(`label ${name}'s value has no closing quote`);
      const c = rest[i]!;
      if (c === '\\') raw += c + (rest[++i] ?? '');
      else if (c === '"') break;
      else raw += c;
    }
    labels[name] = unescape(raw, true, fail);
    rest = rest.slice(i + 1).trim();
    if (rest.startsWith(',')) rest = rest.slice(1).trim();
    else if (rest !== '') fail(`expected "," between labels at ${JSON.stringify(rest)}`);
  }
  return labels;
}

function unescape(s: string, quoted: boolean, fail: (why: string) => never): string {
  return s.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    if (c === '"' && quoted) return '"';
    return fail(`an unknown escape \\${c}`);
  });
}

function parseValue(text: string, fail: (why: string) => never): number {
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) fail(`${JSON.stringify(text)} is not a number`);
  return Number(text);
}

/** Per label set: buckets ascending and cumulative, a +Inf bucket equal to _count, and a _sum. */
function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name === `${f.name}_bucket`) g.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else throw new Error(`histogram ${f.name}: a sample named ${s.name}`);
  }
  for (const [key, g] of groups) {
    const at = `histogram ${f.name} ${key}`;
    if (g.count === undefined || g.sum === undefined) throw new Error(`${at}: no _count or no _sum`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`${at}: buckets are not in ascending order of le`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`${at}: buckets are not cumulative`);
    }
    const inf = g.buckets.at(-1);
    if (!inf || inf[0] !== Infinity) throw new Error(`${at}: no +Inf bucket`);
    if (inf[1] !== g.count) throw new Error(`${at}: the +Inf bucket (${inf[1]}) is not _count (${g.count})`);
  }
}
