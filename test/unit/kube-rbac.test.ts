// The executor's Role in config/kubernetes/ against the calls the kubernetes runner's code makes,
// read from the source of src/runners/kubernetes/: every typed client call (this.batch.…,
// this.core.…), every watch path and the log path, each turned into the (API group, resource,
// verb) RBAC checks it against. The Role must grant exactly those: a call it does not grant fails
// in a cluster, a grant no call needs is a right the executor should not hold. (The integration
// test kube-runner.test.ts checks the same against the requests the runner really sends.)

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadManifests } from '../harness/fake-kube-rbac.js';

const RUNNER_DIR = fileURLToPath(new URL('../../src/runners/kubernetes/', import.meta.url));

/** The client classes the runner may use, and the API group each one talks to. */
const API_GROUPS: Record<string, string> = { batch: 'batch', core: '' };
const CLIENT_CLASSES: Record<string, string> = { BatchV1Api: 'batch', CoreV1Api: 'core' };
/** Method prefix of @kubernetes/client-node → RBAC verb. */
const VERB_OF: Record<string, string> = { create: 'create', read: 'get', list: 'list', patch: 'patch', replace: 'update', delete: 'delete', deleteCollection: 'deletecollection' };

const key = (group: string, resource: string, verb: string): string => `${group || 'core'}/${resource} ${verb}`;

/** `(group/resource verb)` for every call in the runner's code; throws on a call it cannot read. */
export function runnerCalls(dir = RUNNER_DIR): { calls: Set<string>; where: Map<string, string[]> } {
  const calls = new Set<string>();
  const where = new Map<string, string[]>();
  const add = (k: string, at: string): void => {
    calls.add(k);
    where.set(k, [...(where.get(k) ?? []), at]);
  };
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts')).sort()) {
    // Comments name paths and calls too; only the code counts.
    const code = readFileSync(join(dir, file), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|\s)\/\/.*$/gm, '$1');
    for (const m of code.matchAll(/makeApiClient\((\w+)\)/g)) {
      if (!CLIENT_CLASSES[m[1]!]) throw new Error(`${file}: makeApiClient(${m[1]}) is a client this test does not know; add it and its API group`);
    }
    for (const m of code.matchAll(/this\.(batch|core)\.(\w+)\(/g)) {
      const parsed = /^(create|read|list|patch|replace|deleteCollection|delete)Namespaced([A-Z][a-z]+(?:[A-Z][a-z]+)*?)(Log|Status|Scale|Eviction|Binding)?$/.exec(m[2]!);
      if (!parsed) throw new Error(`${file}: this.${m[1]}.${m[2]}() is a call this test cannot map to an RBAC verb`);
      const resource = `${parsed[2]!.toLowerCase()}s${parsed[3] ? `/${parsed[3].toLowerCase()}` : ''}`;
      add(key(API_GROUPS[m[1]!]!, resource, VERB_OF[parsed[1]!]!), `${file}: this.${m[1]}.${m[2]}`);
    }
    // Paths the runner requests itself: watches of a collection, and a pod's log.
    for (const m of code.matchAll(/`([^`]*\/namespaces\/[^`]*)`/g)) {
      const path = m[1]!;
      const group = /\/apis\/([^/]+)\/v\d/.exec(path)?.[1] ?? '';
      const before = code.slice(Math.max(0, m.index! - 120), m.index!);
      let found = /\/namespaces\/\$\{[^}]+\}\/([a-z]+)$/.exec(path);
      if (found && /watchEvents<\w+>\(\s*this\.kc,\s*$/.test(before)) {
        add(key(group, found[1]!, 'watch'), `${file}: watchEvents ${path}`);
        continue;
      }
      found = /\/namespaces\/\$\{[^}]+\}\/([a-z]+)\/\$\{[^}]+\}\/([a-z]+)$/.exec(path);
      if (found && /method: 'GET'/.test(code)) {
        add(key(group, `${found[1]}/${found[2]}`, 'get'), `${file}: GET ${path}`);
        continue;
      }
      throw new Error(`${file}: the request path ${path} is one this test cannot map to an RBAC verb`);
    }
  }
  return { calls, where };
}

/** `(group/resource verb)` for every rule of the executor's Role. */
function roleGrants(name = 'grid-executor'): Set<string> {
  const role = loadManifests().find((m) => m.doc.kind === 'Role' && m.doc.metadata.name === name);
  if (!role) throw new Error(`no Role ${name} in config/kubernetes/`);
  const out = new Set<string>();
  for (const rule of role.doc['rules'] as Array<{ apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }>) {
    expect(rule.resourceNames, 'resourceNames cannot name the Secrets and Jobs of tasks not yet run').toBeUndefined();
    for (const g of rule.apiGroups) for (const r of rule.resources) for (const v of rule.verbs) out.add(key(g, r, v));
  }
  return out;
}

describe('the executor\'s Role against the kubernetes runner\'s code', () => {
  it('grants exactly the calls the runner\'s code makes, no more and no less', () => {
    const { calls, where } = runnerCalls();
    const grants = roleGrants();
    const missing = [...calls].filter((c) => !grants.has(c)).map((c) => `${c} (${where.get(c)!.join('; ')})`);
    const unused = [...grants].filter((g) => !calls.has(g));
    expect({ missing, unused }).toEqual({ missing: [], unused: [] });
  });

  it('reads the calls it should: every verb of the runner is found in its code', () => {
    expect([...runnerCalls().calls].sort()).toEqual(
      [
        'batch/jobs create', 'batch/jobs get', 'batch/jobs list', 'batch/jobs watch', 'batch/jobs patch', 'batch/jobs delete',
        'core/pods list', 'core/pods watch',
        'core/pods/log get',
        'core/secrets create',
      ].sort(),
    );
  });

  it('gives no right on Secrets but create: none to read, change or delete one, its own or another\'s', () => {
    const secrets = [...roleGrants()].filter((g) => g.startsWith('core/secrets '));
    expect(secrets).toEqual(['core/secrets create']);
  });
});
