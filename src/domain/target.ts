// Target expressions ("all", "group:web,node:db-1", "any:gpu") and their resolution against the
// executor registry at dispatch time. Pure: the dispatcher passes in the executors it read.

import { ValidationError, type Problem } from '../errors.js';
import { didYouMean } from '../util/suggest.js';

export type FanoutTerm = { kind: 'all' } | { kind: 'group'; group: string } | { kind: 'node'; name: string };

export interface Target {
  /** Terms that fan out one task per matching executor. */
  fanout: FanoutTerm[];
  /** Groups whose pool runs the job once ("all" for a bare `any`). */
  pools: string[];
}

/** The implicit group every executor belongs to. */
export const ALL_GROUP = 'all';

const GROUP_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NODE_RE = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const FORMS = 'use all, group:G, node:NAME, any or any:G';
const GROUP_RULE = 'lowercase letters, digits and "-", at most 63 characters';
const NODE_RULE = 'lowercase letters, digits, "-" and ".", at most 253 characters';

export function isGroupName(s: string): boolean {
  return s.length <= 63 && GROUP_RE.test(s);
}

export function isNodeName(s: string): boolean {
  return s.length <= 253 && NODE_RE.test(s);
}

/** Parses a target, throwing one ValidationError that lists every bad part. */
export function parseTarget(text: string, path = 'target'): Target {
  const problems: Problem[] = [];
  const t = targetProblems(text, path, problems);
  if (problems.length) throw new ValidationError(problems);
  return t;
}

/** Parses a target, recording problems instead of throwing (for validators that collect them). */
export function targetProblems(text: string, path: string, problems: Problem[]): Target {
  const fanout: FanoutTerm[] = [];
  const pools: string[] = [];
  const add = (message: string) => problems.push({ path, message });
  if (typeof text !== 'string' || text.trim() === '') {
    add(`empty; ${FORMS}`);
    return { fanout, pools };
  }
  const parts = text.split(',').map((p) => p.trim());
  parts.forEach((part, i) => {
    if (part === '') {
      add(`${JSON.stringify(text)} has an empty part${i === parts.length - 1 ? ' (a trailing comma?)' : ''}; ${FORMS}`);
      return;
    }
    const colon = part.indexOf(':');
    const kind = colon < 0 ? part : part.slice(0, colon).trim();
    const value = colon < 0 ? undefined : part.slice(colon + 1).trim();
    const pushFanout = (term: FanoutTerm) => {
      if (!fanout.some((f) => formatTerm(f) === formatTerm(term))) fanout.push(term);
    };
    const pushPool = (g: string) => {
      if (!pools.includes(g)) pools.push(g);
    };
    if (value === undefined && kind === 'all') return pushFanout({ kind: 'all' });
    if (value === undefined && kind === 'any') return pushPool(ALL_GROUP);
    if (value !== undefined && (kind === 'group' || kind === 'any' || kind === 'node')) {
      if (value === '') return add(`"${part}" needs a ${kind === 'node' ? 'node name' : 'group name'} after ":", e.g. ${kind}:${kind === 'node' ? 'web-1' : 'web'}`);
      if (kind === 'node') {
        if (!isNodeName(value)) return add(`"${part}": "${value}" is not a valid node name; use ${NODE_RULE}`);
        return pushFanout({ kind: 'node', name: value });
      }
      if (!isGroupName(value)) return add(`"${part}": "${value}" is not a valid group name; use ${GROUP_RULE}`);
      if (kind === 'any') return pushPool(value);
      return pushFanout(value === ALL_GROUP ? { kind: 'all' } : { kind: 'group', group: value });
    }
    const candidates = value === undefined || value === '' ? ['all', 'any'] : [`group:${value}`, `node:${value}`, `any:${value}`];
    if (value === undefined && ['group', 'node'].includes(kind)) {
      return add(`"${part}" needs a name: ${kind}:${kind === 'node' ? 'NAME' : 'G'}; ${FORMS}`);
    }
    add(`"${part}" is not a target; ${FORMS}${didYouMean(part, candidates)}`);
  });
  return { fanout, pools };
}

function formatTerm(t: FanoutTerm): string {
  return t.kind === 'all' ? 'all' : t.kind === 'group' ? `group:${t.group}` : `node:${t.name}`;
}

/** Canonical text: fan-out terms in order, then pools. */
export function formatTarget(t: Target): string {
  const pools = t.pools.map((g) => (g === ALL_GROUP ? 'any' : `any:${g}`));
  return [...t.fanout.map(formatTerm), ...pools].join(',');
}

// ---- resolution ----

export interface TargetExecutor {
  id: string;
  name: string;
  groups: string[];
  runners: string[];
  state: string;
}

export interface TargetResolution<E extends TargetExecutor> {
  /** Executors matched by a fan-out term that offer the runner, by name; `skipped` when not ACTIVE. */
  fanout: Array<E & { skipped?: string }>;
  /** Executors matched by a fan-out term that do not offer the runner. */
  excluded: Array<{ name: string; reason: string }>;
  /** One entry per pool group: its ACTIVE members that offer the runner. */
  pools: Array<{ group: string; members: E[] }>;
  /** A human reason for each term that yields no executor. */
  problems: string[];
}

export const ACTIVE = 'ACTIVE';

function inGroup(e: TargetExecutor, group: string): boolean {
  return group === ALL_GROUP || e.groups.includes(group);
}

function byName(a: TargetExecutor, b: TargetExecutor): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function resolveTarget<E extends TargetExecutor>(target: Target, executors: E[], runner: string): TargetResolution<E> {
  const problems: string[] = [];
  const matched = new Map<string, E>();
  const offers = (e: E) => e.runners.includes(runner);
  const knownGroups = new Set(executors.flatMap((e) => e.groups));

  for (const term of target.fanout) {
    const label = formatTerm(term);
    const hits = executors.filter((e) =>
      term.kind === 'all' ? true : term.kind === 'group' ? inGroup(e, term.group) : e.name === term.name,
    );
    for (const e of hits) if (!matched.has(e.id)) matched.set(e.id, e);
    if (hits.length === 0) {
      if (term.kind === 'all') problems.push(`${label}: no executors are registered`);
      else if (term.kind === 'group') {
        problems.push(`${label}: no executor is in group "${term.group}"${didYouMean(term.group, knownGroups)}`);
      } else {
        problems.push(`${label}: no executor named "${term.name}"${didYouMean(term.name, executors.map((e) => e.name))}`);
      }
    } else if (!hits.some(offers)) {
      problems.push(`${label}: ${countExecutors(hits.length)} matched, but none offers the "${runner}" runner`);
    }
  }

  const fanout: Array<E & { skipped?: string }> = [];
  const excluded: Array<{ name: string; reason: string }> = [];
  for (const e of [...matched.values()].sort(byName)) {
    if (!offers(e)) {
      const has = e.runners.length ? e.runners.join(', ') : 'none';
      excluded.push({ name: e.name, reason: `does not offer the "${runner}" runner (offers ${has})` });
    } else if (e.state !== ACTIVE) {
      fanout.push({ ...e, skipped: `executor is ${e.state}, not ${ACTIVE}` });
    } else {
      fanout.push({ ...e });
    }
  }

  const pools = target.pools.map((group) => {
    const inPool = executors.filter((e) => inGroup(e, group));
    const members = inPool.filter((e) => offers(e) && e.state === ACTIVE).sort(byName);
    const label = group === ALL_GROUP ? 'any' : `any:${group}`;
    if (inPool.length === 0) {
      problems.push(`${label}: no executor is in group "${group}"${group === ALL_GROUP ? '' : didYouMean(group, knownGroups)}`);
    } else if (members.length === 0) {
      const offering = inPool.filter(offers).length;
      problems.push(
        offering === 0
          ? `${label}: ${countExecutors(inPool.length)} in the group, but none offers the "${runner}" runner`
          : `${label}: ${countExecutors(offering)} offering the "${runner}" runner, but none is ${ACTIVE}`,
      );
    }
    return { group, members };
  });

  return { fanout, excluded, pools, problems };
}

function countExecutors(n: number): string {
  return n === 1 ? '1 executor' : `${n} executors`;
}

