// config/kubernetes/ as deployable units: every container (init containers too) meets the
// restricted Pod Security Standard (test/harness/pod-security.ts, written from the standard) and
// has a read-only root filesystem; every Deployment's containers have probes and resources; the
// Service reaches the controller's ports; the kustomization lists every manifest; the
// controller's ConfigMap loads; the executor has time to drain before it is killed. When kubectl
// is on PATH, `kubectl kustomize` builds the same objects.

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { loadControllerConfig } from '../../src/config/controller.js';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { STOP_AFTER_GRACE_MS } from '../../src/executor/agent.js';
import { KUSTOMIZATION, loadManifests, MANIFEST_DIR, type KubeObject } from '../harness/fake-kube-rbac.js';
import { containersOf, restrictedViolations } from '../harness/pod-security.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = Record<string, any>;

const README = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const docs = loadManifests().map((m) => m.doc);
const deployments = docs.filter((d) => d.kind === 'Deployment') as Array<KubeObject & { spec: Obj }>;
const podSpec = (d: Obj): Obj => d['spec']['template']['spec'];
const named = (kind: string, name: string): Obj => {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!d) throw new Error(`no ${kind} ${name} in config/kubernetes/`);
  return d;
};

describe('config/kubernetes: Pod Security', () => {
  it('the namespace enforces the restricted standard', () => {
    expect(named('Namespace', 'grid').metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
  });

  it('there is a controller and an executor Deployment', () => {
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(['grid-controller', 'grid-executor']);
  });

  it.each(deployments.map((d) => [d.metadata.name, d] as const))('%s: every container, init containers included, meets the restricted standard', (_name, d) => {
    expect(restrictedViolations(podSpec(d))).toEqual([]);
  });

  it.each(deployments.map((d) => [d.metadata.name, d] as const))(
    '%s: every container says so itself (non-root, seccomp RuntimeDefault, drop ALL, no escalation) and has a read-only root filesystem',
    (_name, d) => {
      for (const { at, c } of containersOf(podSpec(d))) {
        expect(c['securityContext'], at).toEqual({
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
      }
      expect(podSpec(d)['securityContext']).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(podSpec(d)['securityContext']['runAsUser']).toBeGreaterThan(0);
    },
  );

  it('the check can fail: a container without its securityContext, as the old init container was, is named', () => {
    const old = structuredClone(podSpec(named('Deployment', 'grid-executor')));
    delete old['initContainers'][0]['securityContext'];
    delete old['securityContext']['seccompProfile'];
    expect(restrictedViolations(old)).toEqual([
      'spec.initContainers[0].securityContext.allowPrivilegeEscalation: must be false, is undefined',
      'spec.initContainers[0].securityContext.capabilities.drop: must include ALL, is []',
      'spec.initContainers[0].securityContext.seccompProfile.type: must be RuntimeDefault or Localhost (here or for the pod), is undefined',
    ]);
  });
});

describe('config/kubernetes: probes, resources, ports', () => {
  it.each(deployments.map((d) => [d.metadata.name, d] as const))('%s: every container has liveness and readiness probes that point at something', (_name, d) => {
    for (const { at, c } of containersOf(podSpec(d)).filter((x) => x.at.includes('.containers['))) {
      const ports = new Map<string | number, number>(((c['ports'] ?? []) as Obj[]).flatMap((p) => [[p['name'], p['containerPort']], [p['containerPort'], p['containerPort']]]));
      for (const kind of ['livenessProbe', 'readinessProbe']) {
        const probe = c[kind] as Obj | undefined;
        expect(probe, `${at}.${kind}`).toBeDefined();
        if (probe!['httpGet']) {
          expect(ports.has(probe!['httpGet']['port']), `${at}.${kind}: port ${probe!['httpGet']['port']} is none of the container's`).toBe(true);
          expect(probe!['httpGet']['path']).toMatch(/^\/(livez|readyz)$/);
        } else {
          expect(probe!['exec']?.['command']?.length, `${at}.${kind}: neither httpGet nor exec`).toBeGreaterThan(0);
        }
      }
    }
  });

  it.each(deployments.map((d) => [d.metadata.name, d] as const))('%s: every container, init containers included, requests cpu and memory and is limited in memory', (_name, d) => {
    for (const { at, c } of containersOf(podSpec(d))) {
      expect(Object.keys(c['resources']?.['requests'] ?? {}).sort(), at).toEqual(['cpu', 'memory']);
      expect(c['resources']?.['limits']?.['memory'], at).toBeDefined();
    }
  });

  it('the controller Service selects the controller\'s pods and reaches its gRPC and HTTP ports', () => {
    const svc = named('Service', 'grid-controller');
    const deploy = named('Deployment', 'grid-controller');
    expect(deploy['spec']['template']['metadata']['labels']).toMatchObject(svc['spec']['selector']);
    const ports = (podSpec(deploy)['containers'][0]['ports'] as Obj[]).map((p) => p['name']);
    expect((svc['spec']['ports'] as Obj[]).map((p) => [p['name'], p['port'], ports.includes(p['targetPort'])])).toEqual([
      ['grpc', 7070, true],
      ['http', 7080, true],
    ]);
  });

  it('every volume mounted is declared, and every ConfigMap and Secret not in the manifests is one README.md says how to create', () => {
    const made = new Set(docs.filter((d) => d.kind === 'ConfigMap' || d.kind === 'Secret').map((d) => d.metadata.name));
    const deploying = README.slice(README.indexOf('## Deploying'));
    for (const d of deployments) {
      const spec = podSpec(d);
      const volumes = new Set((spec['volumes'] as Obj[]).map((v) => v['name']));
      for (const { at, c } of containersOf(spec)) for (const m of c['volumeMounts'] as Obj[]) expect(volumes.has(m['name']), `${at}: ${m['name']}`).toBe(true);
      const refs = [
        ...(spec['volumes'] as Obj[]).map((v) => v['configMap']?.['name'] ?? v['secret']?.['secretName']),
        ...containersOf(spec).flatMap(({ c }) => ((c['env'] ?? []) as Obj[]).map((e) => e['valueFrom']?.['secretKeyRef']?.['name'])),
      ].filter((n): n is string => typeof n === 'string');
      for (const ref of refs.filter((r) => !made.has(r))) expect(deploying, `${d.metadata.name} needs ${ref}`).toMatch(new RegExp(`create (secret generic|configmap) ${ref}\\b`));
    }
  });
});

describe('config/kubernetes: configuration and stop time', () => {
  /** The JSON of a ConfigMap key, with every absolute path moved under `root` and made there (stand-in content). */
  function configIn(root: string, cm: Obj, key: string): string {
    return (cm['data'][key] as string).replace(/"(\/etc\/[^"]+)"/g, (_m, path: string) => {
      const file = join(root, path);
      if (path.endsWith('nats-auth')) {
        mkdirSync(file, { recursive: true }); // a folder of keys, read when the controller starts
      } else {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, path.endsWith('secrets-key') ? `${Buffer.alloc(32, 7).toString('base64')}\n` : 'stand-in-secret-value-0123456789\n');
      }
      return JSON.stringify(file);
    });
  }

  it('the controller\'s ConfigMap loads (unknown keys are refused) with external etcd and NATS, GRID\'s CA and tokens from files', async () => {
    const root = mkdtempSync(join(tmpdir(), 'grid-kube-controller-'));
    try {
      const file = join(root, 'controller.json');
      writeFileSync(file, configIn(root, named('ConfigMap', 'grid-controller'), 'controller.json'));
      const cfg = await loadControllerConfig({ file, env: {}, cwd: root });
      expect(cfg.etcd.endpoints.length).toBeGreaterThan(0);
      expect(cfg.nats.servers.length).toBeGreaterThan(0);
      expect(cfg.grpc_address).toBe('0.0.0.0:7070');
      expect(cfg.http_address).toBe('0.0.0.0:7080');
      expect(cfg.tls.server_names).toContain('grid-controller.grid.svc');
      expect(cfg.tokens.map((t) => t.role)).toEqual(['admin']);
      expect(cfg.registration_tokens).toHaveLength(1);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('the executor reaches the controller through its Service and verifies it with GRID\'s CA', () => {
    const cfg = JSON.parse(named('ConfigMap', 'grid-executor')['data']['executor.json'] as string) as { controller: string; ca_file: string };
    expect(cfg.controller).toBe('grid-controller.grid.svc:7070');
    expect(named('ConfigMap', 'grid-controller')['data']['controller.json']).toContain('"grid-controller.grid.svc"');
    expect(cfg.ca_file).toBe('/etc/grid-ca/ca.crt');
  });

  it('the executor pod is given time to drain: terminationGracePeriodSeconds > shutdown_grace_seconds + what close() does after it', () => {
    const root = mkdtempSync(join(tmpdir(), 'grid-kube-executor-'));
    try {
      const file = join(root, 'executor.json');
      writeFileSync(file, named('ConfigMap', 'grid-executor')['data']['executor.json']);
      const grace = loadExecutorConfig({ file, env: {}, cwd: root }).shutdown_grace_seconds;
      const period = podSpec(named('Deployment', 'grid-executor'))['terminationGracePeriodSeconds'] as number;
      expect(period).toBeGreaterThan(grace + STOP_AFTER_GRACE_MS / 1000);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('config/kubernetes: kustomization', () => {
  it('lists every manifest in the folder, in order, and nothing else', () => {
    const kustomization = yaml.load(readFileSync(join(MANIFEST_DIR, KUSTOMIZATION), 'utf8')) as Obj;
    const files = readdirSync(MANIFEST_DIR).filter((f) => /\.ya?ml$/.test(f) && f !== KUSTOMIZATION).sort();
    expect(kustomization['apiVersion']).toBe('kustomize.config.k8s.io/v1beta1');
    expect(kustomization['kind']).toBe('Kustomization');
    expect(kustomization['namespace']).toBe('grid');
    expect(kustomization['resources']).toEqual(files);
    const images = new Set(deployments.flatMap((d) => containersOf(podSpec(d)).map(({ c }) => String(c['image']).split(':')[0])));
    expect((kustomization['images'] as Obj[]).map((i) => i['name'])).toEqual([...images]);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)('kubectl kustomize builds exactly the objects of the manifests (runs where kubectl is installed)', () => {
    const built = yaml.loadAll(execFileSync('kubectl', ['kustomize', MANIFEST_DIR], { encoding: 'utf8' })) as KubeObject[];
    const ids = (list: KubeObject[]) => list.map((d) => `${d.kind}/${d.metadata.namespace ?? ''}/${d.metadata.name}`).sort();
    expect(ids(built)).toEqual(ids(docs));
  });
});
