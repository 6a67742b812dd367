import { describe, it, expect } from 'vitest';
import { problemsOf } from '../harness/problems.js';
import { formatTarget, parseTarget, resolveTarget, type TargetExecutor } from '../../src/domain/target.js';

describe('parseTarget', () => {
  it('parses every form and formats it back canonically', () => {
    const t = parseTarget('node:web-1.dc1, group:web,all, any ,any:gpu,group:web');
    expect(t).toEqual({
      fanout: [{ kind: 'node', name: 'web-1.dc1' }, { kind: 'group', group: 'web' }, { kind: 'all' }],
      pools: ['all', 'gpu'],
    });
    expect(formatTarget(t)).toBe('node:web-1.dc1,group:web,all,any,any:gpu');
    expect(formatTarget(parseTarget('any:all,group:all'))).toBe('all,any');
  });

  it('names the bad part, the valid forms and a suggestion', () => {
    expect(problemsOf(() => parseTarget('grup:web'))).toEqual([
      'target: "grup:web" is not a target; use all, group:G, node:NAME, any or any:G (did you mean "group:web"?)',
    ]);
    expect(problemsOf(() => parseTarget('al,group:,node:Web_1,'))).toEqual([
      'target: "al" is not a target; use all, group:G, node:NAME, any or any:G (did you mean "all"?)',
      'target: "group:" needs a group name after ":", e.g. group:web',
      'target: "node:Web_1": "Web_1" is not a valid node name; use lowercase letters, digits, "-" and ".", at most 253 characters',
      'target: "al,group:,node:Web_1," has an empty part (a trailing comma?); use all, group:G, node:NAME, any or any:G',
    ]);
    expect(problemsOf(() => parseTarget(''))).toEqual(['target: empty; use all, group:G, node:NAME, any or any:G']);
    expect(problemsOf(() => parseTarget('group'))).toEqual([
      'target: "group" needs a name: group:G; use all, group:G, node:NAME, any or any:G',
    ]);
  });
});

describe('resolveTarget', () => {
  const ex = (id: string, name: string, groups: string[], runners: string[], state = 'ACTIVE'): TargetExecutor => ({
    id,
    name,
    groups,
    runners,
    state,
  });
  const fleet = [
    ex('01', 'web-2', ['web'], ['host']),
    ex('02', 'web-1', ['web'], ['host']),
    ex('03', 'db-1', ['db'], ['host'], 'EXPIRED'),
    ex('04', 'k8s-east', ['web', 'gpu'], ['kubernetes']),
    ex('05', 'gpu-1', ['gpu'], ['host', 'kubernetes'], 'EXPIRED'),
  ];

  it('fans out deduplicated by id, sorted by name, skipping inactive and excluding other runners', () => {
    const r = resolveTarget(parseTarget('group:web,node:web-1,node:db-1'), fleet, 'host');
    expect(r.fanout.map((e) => [e.name, e.skipped])).toEqual([
      ['db-1', 'executor is EXPIRED, not ACTIVE'],
      ['web-1', undefined],
      ['web-2', undefined],
    ]);
    expect(r.excluded).toEqual([{ name: 'k8s-east', reason: 'does not offer the "host" runner (offers kubernetes)' }]);
    expect(r.problems).toEqual([]);
  });

  it('every executor is in group all', () => {
    const r = resolveTarget(parseTarget('all'), fleet, 'kubernetes');
    expect(r.fanout.map((e) => e.name)).toEqual(['gpu-1', 'k8s-east']);
    expect(r.excluded.map((e) => e.name)).toEqual(['db-1', 'web-1', 'web-2']);
  });

  it('pools hold active members offering the runner', () => {
    const r = resolveTarget(parseTarget('any,any:gpu,any:db'), fleet, 'kubernetes');
    expect(r.pools.map((p) => [p.group, p.members.map((m) => m.name)])).toEqual([
      ['all', ['k8s-east']],
      ['gpu', ['k8s-east']],
      ['db', []],
    ]);
    expect(r.problems).toEqual(['any:db: 1 executor in the group, but none offers the "kubernetes" runner']);
  });

  it('gives a reason for each term that matches nothing', () => {
    const r = resolveTarget(parseTarget('node:web-9,group:wbe,group:db,any:gpu'), fleet, 'host');
    expect(r.fanout.map((e) => e.name)).toEqual(['db-1']);
    expect(r.problems).toEqual([
      'node:web-9: no executor named "web-9" (did you mean "web-2"?)',
      'group:wbe: no executor is in group "wbe" (did you mean "web"?)',
      'any:gpu: 1 executor offering the "host" runner, but none is ACTIVE',
    ]);
    expect(resolveTarget(parseTarget('all'), [], 'host').problems).toEqual(['all: no executors are registered']);
  });
});
