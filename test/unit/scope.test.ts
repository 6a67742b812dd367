// Token group scopes: which targets a scoped token may execute on and which executions it sees.

import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/controller/auth.js';
import { authorizeExecution, authorizeTarget, executionInScope, scopeProblem } from '../../src/controller/scope.js';
import { parseTarget } from '../../src/domain/target.js';
import { PermissionDeniedError } from '../../src/errors.js';

const web: Principal = { name: 'deploy-bot', role: 'operator', groups: ['web', 'edge'] };
const open: Principal = { name: 'ops', role: 'operator', groups: [] };
const nodes: Record<string, string[]> = { 'web-1': ['web'], 'db-1': ['db'], 'lonely': [] };
const nodeGroups = (n: string) => nodes[n];

describe('scopeProblem', () => {
  it.each(['group:web', 'group:web,group:edge', 'any:web', 'node:web-1', 'group:edge,node:web-1,any:edge'])('%s lies inside web, edge', (t) => {
    expect(scopeProblem(web, parseTarget(t), nodeGroups)).toBeUndefined();
  });

  it.each([
    ['all', '"all" reaches every executor'],
    ['any', '"any" may pick any executor'],
    ['any:all', '"any" may pick any executor'],
    ['group:db', 'group:db is not one of them'],
    ['group:all', '"all" reaches every executor'],
    ['group:web,group:db', 'group:db is not one of them'],
    ['node:db-1', 'node:db-1 is in groups db'],
    ['node:lonely', 'node:lonely is in no group'],
    ['node:ghost', 'node:ghost is no registered executor'],
    ['any:db', 'any:db is not one of them'],
  ])('%s is outside: %s', (t, why) => {
    expect(scopeProblem(web, parseTarget(t), nodeGroups)).toBe(why);
  });

  it('a token without groups is not scoped', () => {
    expect(scopeProblem(open, parseTarget('all'), nodeGroups)).toBeUndefined();
    expect(executionInScope(open, 'node:ghost', nodeGroups)).toBe(true);
  });
});

describe('refusals name the scope', () => {
  it('execute', () => {
    expect(() => authorizeTarget(web, parseTarget('all'), 'all', nodeGroups)).toThrow(PermissionDeniedError);
    expect(() => authorizeTarget(web, parseTarget('all'), 'all', nodeGroups)).toThrow(
      'deploy-bot\'s token is scoped to groups web, edge: target "all" is outside them ("all" reaches every executor); name a target inside them, e.g. group:web',
    );
    expect(() => authorizeTarget(web, parseTarget('any:web'), 'any:web', nodeGroups)).not.toThrow();
  });

  it('status, logs and cancel', () => {
    expect(() => authorizeExecution(web, { id: 'X1', target: 'group:db' }, nodeGroups, 'cancel')).toThrow(
      'deploy-bot\'s token is scoped to groups web, edge: it may not cancel execution X1, whose target "group:db" is outside them',
    );
    expect(() => authorizeExecution(web, { id: 'X2', target: 'node:web-1' }, nodeGroups, 'see')).not.toThrow();
  });
});
