// Group scopes of API tokens: a token with `groups` may execute only on targets inside those
// groups, and sees, cancels and reads the logs of only the executions whose target lies inside
// them. A token without groups is not scoped. Pure: the caller passes each node's groups.

import { ALL_GROUP, parseTarget, type Target } from '../domain/target.js';
import { PermissionDeniedError } from '../errors.js';
import type { Principal } from './auth.js';

/** A node's groups (the implicit "all" left out), or undefined when no such executor is registered. */
export type NodeGroups = (name: string) => string[] | undefined;

/** Why the target is outside the principal's groups, or undefined when it lies inside them. */
export function scopeProblem(p: Principal, target: Target, nodeGroups: NodeGroups): string | undefined {
  if (p.groups.length === 0) return undefined;
  const inside = (g: string) => g !== ALL_GROUP && p.groups.includes(g);
  for (const t of target.fanout) {
    if (t.kind === 'all') return `"all" reaches every executor`;
    if (t.kind === 'group' && !inside(t.group)) return `group:${t.group} is not one of them`;
    if (t.kind === 'node') {
      const groups = nodeGroups(t.name);
      if (!groups) return `node:${t.name} is no registered executor`;
      if (!groups.some(inside)) return `node:${t.name} is in ${groups.length ? `groups ${groups.join(', ')}` : 'no group'}`;
    }
  }
  for (const g of target.pools) {
    if (g === ALL_GROUP) return `"any" may pick any executor`;
    if (!inside(g)) return `any:${g} is not one of them`;
  }
  return undefined;
}

function scopeText(p: Principal): string {
  return `${p.name}'s token is scoped to groups ${p.groups.join(', ')}`;
}

/** Execute: refuses a target outside the principal's groups, naming the scope that was lacking. */
export function authorizeTarget(p: Principal, target: Target, text: string, nodeGroups: NodeGroups): void {
  const why = scopeProblem(p, target, nodeGroups);
  if (why) throw new PermissionDeniedError(`${scopeText(p)}: target ${JSON.stringify(text)} is outside them (${why}); name a target inside them, e.g. group:${p.groups[0]}`);
}

/** Whether an execution (by its recorded target) is within the principal's scope. */
export function executionInScope(p: Principal, target: string, nodeGroups: NodeGroups): boolean {
  if (p.groups.length === 0) return true;
  try {
    return scopeProblem(p, parseTarget(target), nodeGroups) === undefined;
  } catch {
    return false;
  }
}

/** Status, watch, logs, cancel: refuses an execution outside the principal's scope. */
export function authorizeExecution(p: Principal, x: { id: string; target: string }, nodeGroups: NodeGroups, what: string): void {
  if (executionInScope(p, x.target, nodeGroups)) return;
  throw new PermissionDeniedError(`${scopeText(p)}: it may not ${what} execution ${x.id}, whose target ${JSON.stringify(x.target)} is outside them`);
}
