// The Role in config/kubernetes/ as (resource, verb) pairs, to compare with what the runner's
// requests to the fake API server used (rbacVerbs in fake-kube.ts).

import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { fileURLToPath } from 'node:url';

export const MANIFEST_DIR = fileURLToPath(new URL('../../config/kubernetes/', import.meta.url));
/** Written by test/integration/kube-runner.test.ts: the pairs its requests used, sorted. */
export const KUBE_VERBS_FILE = join(tmpdir(), 'grid-kube-runner-verbs.json');

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** kustomization.yaml: how the manifests are applied together, not a Kubernetes object itself. */
export const KUSTOMIZATION = 'kustomization.yaml';

/** Every document of every .yaml file in config/kubernetes/ (but the kustomization), with the file it came from. */
export function loadManifests(dir = MANIFEST_DIR): Array<{ file: string; doc: KubeObject }> {
  const out: Array<{ file: string; doc: KubeObject }> = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f) && f !== KUSTOMIZATION).sort()) {
    for (const doc of yaml.loadAll(readFileSync(join(dir, file), 'utf8'))) {
      if (doc !== null && doc !== undefined) out.push({ file, doc: doc as KubeObject });
    }
  }
  return out;
}

/** "resource verb" for every rule of the executor's Role (resources × verbs). */
export function roleVerbs(dir = MANIFEST_DIR, name = 'grid-executor'): Set<string> {
  const role = loadManifests(dir).find((m) => m.doc.kind === 'Role' && m.doc.metadata.name === name);
  if (!role) throw new Error(`no Role ${name} in ${dir}`);
  const out = new Set<string>();
  for (const rule of (role.doc['rules'] ?? []) as Array<{ resources: string[]; verbs: string[] }>) {
    for (const r of rule.resources) for (const v of rule.verbs) out.add(`${r} ${v}`);
  }
  return out;
}
