// A small Kubernetes API server for tests: the real REST paths and JSON shapes of batch/v1 Jobs
// and v1 Pods and Secrets (create, get, list, watch, patch, delete, label and field selectors,
// pods/{name}/log?follow=true), with a Job controller that moves each Job's pod through
// Pending → Running → Succeeded/Failed by a script chosen by the container image:
//
//   test/ok             prints "line 1".."line 3" (LINES=n for more) and exits 0
//   test/fail3          prints "about to fail with 3" and exits 3 (Error)
//   test/slow           prints "line i" every INTERVAL_MS (200) for LINES (600) lines, exits 0
//   test/oom            prints "allocating memory" and ends OOMKilled (137)
//   test/env            prints its environment (secretKeyRef resolved from the Secret), sorted
//   test/pull-error     stays Pending: ErrImagePull, then ImagePullBackOff
//   test/unschedulable  stays Pending: PodScheduled=False, reason Unschedulable
//   anything else       ErrImagePull, like a registry that does not have it
//
// It honours backoffLimit, activeDeadlineSeconds (DeadlineExceeded), suspend (no pod until a
// patch lets the Job go), deletion with Foreground / Background / Orphan propagation, and
// ownerReference garbage collection of Secrets. Every
// request is recorded (method, path, query, body) for tests to inspect. Clients reach it through
// a kubeconfig (writeKubeconfig) like any API server: nothing on their side knows it is a fake.

import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

type Resource = 'jobs' | 'pods' | 'secrets';
// The objects are JSON as the API server stores them; loosely typed on purpose.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

export interface RecordedRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  query: Record<string, string>;
  /** Parsed JSON when it is JSON, else the raw text; undefined when empty. */
  body: unknown;
  /** The raw body text. */
  raw: string;
  contentType?: string;
  /** Made by the test itself (header x-fake-kube-test), not by the code under test. */
  fromTest: boolean;
}

export interface FakeKubeOptions {
  /** Time between the simulated steps of a pod (scheduled, pulled, started, …). Default 40 ms. */
  stepMs?: number;
}

interface Watcher {
  resource: Resource;
  ns: string;
  labels?: string;
  fields?: string;
  res: ServerResponse;
}

interface PodSim {
  timers: NodeJS.Timeout[];
  lines: Array<{ ts: string; text: string }>;
  followers: Set<{ res: ServerResponse; timestamps: boolean }>;
  ended: boolean;
}

interface Injected {
  method: string;
  path: RegExp;
  status: number;
  message: string;
}

const KIND: Record<Resource, { kind: string; apiVersion: string; group: string }> = {
  jobs: { kind: 'Job', apiVersion: 'batch/v1', group: 'batch' },
  pods: { kind: 'Pod', apiVersion: 'v1', group: '' },
  secrets: { kind: 'Secret', apiVersion: 'v1', group: '' },
};

export class FakeKube {
  readonly requests: RecordedRequest[] = [];
  url = '';
  private readonly server: Server;
  private readonly objects = new Map<string, Obj>();
  private readonly history: Array<{ rv: number; resource: Resource; ns: string; type: string; object: Obj }> = [];
  private readonly watchers = new Set<Watcher>();
  private readonly sims = new Map<string, PodSim>();
  private readonly jobTimers = new Map<string, NodeJS.Timeout[]>();
  private readonly injected: Injected[] = [];
  private rv = 1000;
  private readonly stepMs: number;
  private closed = false;

  private constructor(opts: FakeKubeOptions) {
    this.stepMs = opts.stepMs ?? 40;
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  static async start(opts: FakeKubeOptions = {}): Promise<FakeKube> {
    const k = new FakeKube(opts);
    await new Promise<void>((resolve) => k.server.listen(0, '127.0.0.1', resolve));
    k.url = `http://127.0.0.1:${(k.server.address() as AddressInfo).port}`;
    return k;
  }

  /** Writes a kubeconfig for this server (context "fake", namespace `namespace`) and returns its path. */
  writeKubeconfig(file: string, namespace = 'default'): string {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'fake-user', user: { token: 'fake-token' } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'fake-user', namespace } }],
      'current-context': 'fake',
    };
    writeFileSync(file, JSON.stringify(config, null, 2));
    return file;
  }

  /** The next request matching `method` and `path` is answered with `status` and `message`. */
  failNext(method: string, path: RegExp, status: number, message: string): void {
    this.injected.push({ method, path, status, message });
  }

  list(resource: Resource, ns?: string): Obj[] {
    return [...this.objects.entries()].filter(([k]) => k.startsWith(`${resource}/${ns ?? ''}`)).map(([, v]) => structuredClone(v));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    for (const sim of this.sims.values()) this.endSim(sim);
    for (const ts of this.jobTimers.values()) ts.forEach(clearTimeout);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  // ---- HTTP ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await new Promise<string>((resolve) => {
      let s = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (s += c));
      req.on('end', () => resolve(s));
    });
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams.entries());
    let body: unknown;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
      }
    }
    const method = req.method ?? 'GET';
    this.requests.push({ method, path: url.pathname, query, body, raw, contentType: req.headers['content-type'], fromTest: req.headers['x-fake-kube-test'] !== undefined });
    const inj = this.injected.findIndex((i) => i.method === method && i.path.test(url.pathname));
    if (inj >= 0) {
      const [i] = this.injected.splice(inj, 1);
      return this.status(res, i!.status, 'Invalid', i!.message);
    }
    try {
      this.route(method, url.pathname, query, body, req, res);
    } catch (err) {
      this.status(res, 500, 'InternalError', (err as Error).message);
    }
  }

  private route(method: string, path: string, q: Record<string, string>, body: unknown, req: IncomingMessage, res: ServerResponse): void {
    let r: Resource | undefined;
    let ns = '';
    let name: string | undefined;
    let m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(path);
    if (m) {
      [r, ns, name] = ['jobs', m[1]!, m[2]];
    } else if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/log$/.exec(path)) && method === 'GET') {
      return this.log(decodeURIComponent(m[1]!), decodeURIComponent(m[2]!), q, req, res);
    } else if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|secrets)(?:\/([^/]+))?$/.exec(path))) {
      [r, ns, name] = [m[2] as Resource, m[1]!, m[3]];
    }
    if (!r) return this.status(res, 404, 'NotFound', `the server could not find the requested resource (${method} ${path})`);
    ns = decodeURIComponent(ns);
    if (name !== undefined) name = decodeURIComponent(name);
    if (name === undefined) {
      if (method === 'GET' && (q['watch'] === 'true' || q['watch'] === '1')) return this.watch(r, ns, q, req, res);
      if (method === 'GET') return this.json(res, 200, this.listBody(r, ns, q));
      if (method === 'POST' && r !== 'pods') return this.create(r, ns, body as Obj, res);
      return this.status(res, 405, 'MethodNotAllowed', `${method} not allowed on ${r}`);
    }
    const obj = this.objects.get(`${r}/${ns}/${name}`);
    if (!obj) return this.status(res, 404, 'NotFound', `${r}${KIND[r].group ? `.${KIND[r].group}` : ''} "${name}" not found`, { name, kind: r });
    if (method === 'GET') return this.json(res, 200, obj);
    if (method === 'PATCH') return this.patch(r, obj, body, String(req.headers['content-type'] ?? ''), res);
    if (method === 'DELETE') {
      const policy = q['propagationPolicy'] ?? (body as Obj | undefined)?.['propagationPolicy'] ?? (r === 'jobs' ? 'Orphan' : 'Background');
      return this.delete(r, obj, policy, res);
    }
    return this.status(res, 405, 'MethodNotAllowed', `${method} not allowed on ${r}/${name}`);
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string, details?: Obj): void {
    this.json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, details, code });
  }

  private listBody(r: Resource, ns: string, q: Record<string, string>): Obj {
    const items = this.matching(r, ns, q['labelSelector'], q['fieldSelector']);
    return { kind: `${KIND[r].kind}List`, apiVersion: KIND[r].apiVersion, metadata: { resourceVersion: String(this.rv) }, items };
  }

  private matching(r: Resource, ns: string, labels?: string, fields?: string): Obj[] {
    return [...this.objects.entries()]
      .filter(([k, o]) => k.startsWith(`${r}/${ns}/`) && selects(o, labels, fields))
      .map(([, o]) => o);
  }

  // ---- watch ----

  private watch(r: Resource, ns: string, q: Record<string, string>, req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const w: Watcher = { resource: r, ns, labels: q['labelSelector'], fields: q['fieldSelector'], res };
    const from = q['resourceVersion'];
    if (from && from !== '0') {
      for (const h of this.history) {
        if (h.rv > Number(from) && h.resource === r && h.ns === ns && selects(h.object, w.labels, w.fields)) this.send(w, h.type, h.object);
      }
    } else {
      for (const o of this.matching(r, ns, w.labels, w.fields)) this.send(w, 'ADDED', o);
    }
    this.watchers.add(w);
    const timeout = q['timeoutSeconds'] ? setTimeout(() => res.end(), Number(q['timeoutSeconds']) * 1000) : undefined;
    const gone = (): void => {
      clearTimeout(timeout);
      this.watchers.delete(w);
    };
    req.once('close', gone);
    res.once('close', gone);
  }

  private send(w: Watcher, type: string, object: Obj): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private emit(type: 'ADDED' | 'MODIFIED' | 'DELETED', r: Resource, obj: Obj): void {
    obj['metadata']['resourceVersion'] = String(++this.rv);
    const ns = obj['metadata']['namespace'] as string;
    const snapshot = structuredClone(obj);
    this.history.push({ rv: this.rv, resource: r, ns, type, object: snapshot });
    if (type === 'DELETED') this.objects.delete(`${r}/${ns}/${obj['metadata']['name']}`);
    else this.objects.set(`${r}/${ns}/${obj['metadata']['name']}`, obj);
    for (const w of this.watchers) {
      if (w.resource === r && w.ns === ns && selects(snapshot, w.labels, w.fields)) this.send(w, type, snapshot);
    }
  }

  // ---- create, patch, delete ----

  private create(r: Resource, ns: string, body: Obj, res: ServerResponse): void {
    const name = body?.['metadata']?.['name'] as string | undefined;
    if (!name) return this.status(res, 422, 'Invalid', `${KIND[r].kind} is invalid: metadata.name: Required value`);
    if (this.objects.has(`${r}/${ns}/${name}`)) {
      return this.status(res, 409, 'AlreadyExists', `${r}${KIND[r].group ? `.${KIND[r].group}` : ''} "${name}" already exists`, { name, kind: r });
    }
    const obj: Obj = structuredClone(body);
    obj['apiVersion'] = KIND[r].apiVersion;
    obj['kind'] = KIND[r].kind;
    obj['metadata'] = { ...obj['metadata'], namespace: ns, uid: randomUUID(), creationTimestamp: now(), generation: 1 };
    if (r === 'secrets') {
      const data: Record<string, string> = { ...(obj['data'] ?? {}) };
      for (const [k, v] of Object.entries((obj['stringData'] ?? {}) as Record<string, string>)) data[k] = Buffer.from(v).toString('base64');
      obj['data'] = data;
      delete obj['stringData'];
    }
    if (r === 'jobs') {
      const uid = obj['metadata']['uid'] as string;
      const extra = { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': name, 'controller-uid': uid, 'job-name': name };
      obj['spec'] = obj['spec'] ?? {};
      obj['spec']['selector'] = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
      obj['spec']['template'] = obj['spec']['template'] ?? {};
      obj['spec']['template']['metadata'] = { ...obj['spec']['template']['metadata'] };
      obj['spec']['template']['metadata']['labels'] = { ...obj['spec']['template']['metadata']['labels'], ...extra };
      obj['spec']['backoffLimit'] = obj['spec']['backoffLimit'] ?? 6;
      obj['status'] = {};
    }
    this.emit('ADDED', r, obj);
    this.json(res, 201, obj);
    if (r === 'jobs' && !obj['spec']['suspend']) this.startJob(obj);
  }

  private patch(r: Resource, obj: Obj, body: unknown, contentType: string, res: ServerResponse): void {
    const next = structuredClone(obj);
    if (contentType.startsWith('application/json-patch+json')) {
      for (const op of body as Array<{ op: string; path: string; value?: unknown }>) applyJsonPatch(next, op);
    } else if (contentType.startsWith('application/merge-patch+json') || contentType.startsWith('application/strategic-merge-patch+json')) {
      mergePatch(next, body as Obj);
    } else {
      return this.status(res, 415, 'UnsupportedMediaType', `the body of the request was in an unknown format: ${contentType}`);
    }
    this.emit('MODIFIED', r, next);
    this.json(res, 200, next);
    // A suspended Job let go: the Job controller starts its pod now.
    if (r === 'jobs' && obj['spec']?.['suspend'] && !next['spec']?.['suspend']) this.startJob(next);
  }

  private delete(r: Resource, obj: Obj, policy: string, res: ServerResponse): void {
    const name = obj['metadata']['name'] as string;
    const ns = obj['metadata']['namespace'] as string;
    const success = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: KIND[r].group, kind: r, uid: obj['metadata']['uid'] } };
    if (r !== 'jobs') {
      if (r === 'pods') this.killPod(obj);
      else this.emit('DELETED', r, obj);
      return this.json(res, 200, success);
    }
    this.stopJobTimers(obj);
    if (obj['metadata']['deletionTimestamp']) return this.json(res, 202, obj);
    if (policy === 'Foreground') {
      // The Job stays (with a deletionTimestamp) until its pods are gone, then goes itself.
      const next = structuredClone(obj);
      next['metadata']['deletionTimestamp'] = now();
      next['metadata']['finalizers'] = ['foregroundDeletion'];
      this.emit('MODIFIED', 'jobs', next);
      this.json(res, 200, next);
      this.later(() => {
        for (const pod of this.podsOf(next)) this.killPod(pod);
        this.later(() => {
          const cur = this.objects.get(`jobs/${ns}/${name}`);
          if (cur) this.emit('DELETED', 'jobs', cur);
          this.collectGarbage(next);
        });
      });
      return;
    }
    this.emit('DELETED', 'jobs', obj);
    this.json(res, 200, success);
    if (policy === 'Background') {
      this.later(() => {
        for (const pod of this.podsOf(obj)) this.killPod(pod);
        this.collectGarbage(obj);
      });
    }
  }

  private collectGarbage(owner: Obj): void {
    const uid = owner['metadata']['uid'] as string;
    for (const s of this.matching('secrets', owner['metadata']['namespace'] as string)) {
      if ((s['metadata']['ownerReferences'] ?? []).some((o: Obj) => o['uid'] === uid)) this.emit('DELETED', 'secrets', s);
    }
  }

  // ---- the Job controller and the kubelet ----

  private later(fn: () => void, ms = this.stepMs): NodeJS.Timeout {
    const t = setTimeout(() => {
      if (!this.closed) fn();
    }, ms);
    return t;
  }

  private jobKey(job: Obj): string {
    return `${job['metadata']['namespace']}/${job['metadata']['name']}`;
  }

  private stopJobTimers(job: Obj): void {
    for (const t of this.jobTimers.get(this.jobKey(job)) ?? []) clearTimeout(t);
    this.jobTimers.delete(this.jobKey(job));
  }

  private currentJob(job: Obj): Obj | undefined {
    const cur = this.objects.get(`jobs/${this.jobKey(job)}`);
    return cur && cur['metadata']['uid'] === job['metadata']['uid'] && !cur['metadata']['deletionTimestamp'] ? cur : undefined;
  }

  private podsOf(job: Obj): Obj[] {
    return this.matching('pods', job['metadata']['namespace'] as string).filter((p) =>
      (p['metadata']['ownerReferences'] ?? []).some((o: Obj) => o['uid'] === job['metadata']['uid']),
    );
  }

  private updateJob(job: Obj, change: (j: Obj) => void): void {
    const cur = this.currentJob(job);
    if (!cur) return;
    const next = structuredClone(cur);
    change(next);
    this.emit('MODIFIED', 'jobs', next);
  }

  private startJob(job: Obj): void {
    const timers: NodeJS.Timeout[] = [];
    this.jobTimers.set(this.jobKey(job), timers);
    timers.push(
      this.later(() => {
        this.updateJob(job, (j) => {
          j['status'] = { ...j['status'], startTime: now(), active: 1 };
        });
        this.createPod(job);
      }),
    );
    const deadline = job['spec']['activeDeadlineSeconds'] as number | undefined;
    if (deadline) timers.push(this.later(() => this.deadlineExceeded(job), deadline * 1000 + this.stepMs));
  }

  private deadlineExceeded(job: Obj): void {
    const cur = this.currentJob(job);
    if (!cur || finished(cur)) return;
    for (const pod of this.podsOf(cur)) {
      if (!['Succeeded', 'Failed'].includes(pod['status']['phase'])) this.terminate(pod, 143, 'Error', false);
      this.killPod(pod);
    }
    this.updateJob(job, (j) => {
      j['status'] = {
        ...j['status'],
        active: 0,
        failed: (j['status']['failed'] ?? 0) + 1,
        conditions: [
          { type: 'FailureTarget', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline', lastTransitionTime: now() },
          { type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline', lastTransitionTime: now() },
        ],
      };
    });
  }

  private createPod(job: Obj): void {
    if (!this.currentJob(job)) return;
    const template = job['spec']['template'] as Obj;
    const name = `${job['metadata']['name']}-${randomBytes(3).toString('hex').slice(0, 5)}`;
    const pod: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: job['metadata']['namespace'],
        uid: randomUUID(),
        creationTimestamp: now(),
        labels: { ...template['metadata']?.['labels'] },
        annotations: { ...template['metadata']?.['annotations'] },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job['metadata']['name'], uid: job['metadata']['uid'], controller: true, blockOwnerDeletion: true }],
      },
      spec: structuredClone(template['spec']),
      status: { phase: 'Pending', conditions: [], qosClass: 'BestEffort' },
    };
    const sim: PodSim = { timers: [], lines: [], followers: new Set(), ended: false };
    this.sims.set(this.podKey(pod), sim);
    this.emit('ADDED', 'pods', pod);
    this.script(pod, sim);
  }

  private podKey(pod: Obj): string {
    return `${pod['metadata']['namespace']}/${pod['metadata']['name']}`;
  }

  private step(sim: PodSim, ms: number, fn: () => void): void {
    sim.timers.push(this.later(fn, ms));
  }

  private updatePod(pod: Obj, change: (p: Obj) => void): Obj | undefined {
    const cur = this.objects.get(`pods/${this.podKey(pod)}`);
    if (!cur) return undefined;
    const next = structuredClone(cur);
    change(next);
    this.emit('MODIFIED', 'pods', next);
    return next;
  }

  private script(pod: Obj, sim: PodSim): void {
    const container = pod['spec']['containers'][0] as Obj;
    const image = String(container['image']).split(':')[0]!;
    const env = this.envOf(pod);
    const waiting = (reason: string, message?: string) => (p: Obj) => {
      p['status']['containerStatuses'] = [{ name: container['name'], image: container['image'], ready: false, restartCount: 0, started: false, state: { waiting: { reason, message } } }];
    };
    if (image === 'test/unschedulable') {
      this.step(sim, this.stepMs, () =>
        this.updatePod(pod, (p) => {
          p['status']['conditions'] = [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message: '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
              lastTransitionTime: now(),
            },
          ];
        }),
      );
      return;
    }
    this.step(sim, this.stepMs, () =>
      this.updatePod(pod, (p) => {
        p['spec']['nodeName'] = 'fake-node-1';
        p['status']['conditions'] = [{ type: 'PodScheduled', status: 'True', lastTransitionTime: now() }];
        waiting('ContainerCreating')(p);
      }),
    );
    const scripts: Record<string, () => { lines: string[]; everyMs: number; code: number; reason: string }> = {
      'test/ok': () => ({ lines: range(Number(env['LINES'] ?? 3)).map((i) => `line ${i}`), everyMs: 20, code: 0, reason: 'Completed' }),
      'test/fail3': () => ({ lines: ['about to fail with 3'], everyMs: 20, code: 3, reason: 'Error' }),
      'test/slow': () => ({ lines: range(Number(env['LINES'] ?? 600)).map((i) => `line ${i}`), everyMs: Number(env['INTERVAL_MS'] ?? 200), code: 0, reason: 'Completed' }),
      'test/oom': () => ({ lines: ['allocating memory'], everyMs: 20, code: 137, reason: 'OOMKilled' }),
      'test/env': () => ({ lines: Object.keys(env).sort().map((k) => `${k}=${env[k]}`), everyMs: 5, code: 0, reason: 'Completed' }),
    };
    const run = scripts[image];
    if (!run) {
      const ref = `docker.io/${image}:latest`;
      this.step(sim, this.stepMs * 2, () =>
        this.updatePod(pod, waiting('ErrImagePull', `rpc error: code = NotFound desc = failed to pull and unpack image "${ref}": not found`)),
      );
      this.step(sim, this.stepMs * 4, () => this.updatePod(pod, waiting('ImagePullBackOff', `Back-off pulling image "${ref}"`)));
      return;
    }
    const s = run();
    this.step(sim, this.stepMs * 2, () => {
      this.updatePod(pod, (p) => {
        p['status']['phase'] = 'Running';
        p['status']['startTime'] = now();
        p['status']['containerStatuses'] = [
          { name: container['name'], image: container['image'], ready: true, restartCount: 0, started: true, state: { running: { startedAt: now() } } },
        ];
      });
      let i = 0;
      const next = (): void => {
        if (sim.ended) return;
        if (i < s.lines.length) {
          this.print(sim, s.lines[i++]!);
          this.step(sim, s.everyMs, next);
        } else {
          this.terminate(pod, s.code, s.reason, true);
        }
      };
      this.step(sim, this.stepMs, next);
    });
  }

  /** The container's environment as the kubelet would set it: values, and secretKeyRef from the Secret. */
  private envOf(pod: Obj): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of (pod['spec']['containers'][0]['env'] ?? []) as Obj[]) {
      if (e['value'] !== undefined) out[e['name']] = String(e['value']);
      const ref = e['valueFrom']?.['secretKeyRef'];
      if (ref) {
        const secret = this.objects.get(`secrets/${pod['metadata']['namespace']}/${ref['name']}`);
        const v = secret?.['data']?.[ref['key']];
        out[e['name']] = v === undefined ? '<missing>' : Buffer.from(String(v), 'base64').toString('utf8');
      }
    }
    return out;
  }

  private print(sim: PodSim, text: string): void {
    const line = { ts: nanoTime(), text };
    sim.lines.push(line);
    for (const f of sim.followers) f.res.write(`${f.timestamps ? `${line.ts} ` : ''}${text}\n`);
  }

  /** The container ends with `code`; the Job controller takes note (or, for `jobToo` false, the caller does). */
  private terminate(pod: Obj, code: number, reason: string, jobToo: boolean): void {
    const sim = this.sims.get(this.podKey(pod));
    if (sim) this.endSim(sim);
    const updated = this.updatePod(pod, (p) => {
      p['status']['phase'] = code === 0 ? 'Succeeded' : 'Failed';
      const cs = p['status']['containerStatuses']?.[0] ?? { name: 'task' };
      const startedAt = cs['state']?.['running']?.['startedAt'] ?? now();
      p['status']['containerStatuses'] = [{ ...cs, ready: false, started: false, state: { terminated: { exitCode: code, reason, startedAt, finishedAt: now() } } }];
    });
    if (!updated || !jobToo) return;
    const owner = (updated['metadata']['ownerReferences'] as Obj[])[0]!;
    const job = this.objects.get(`jobs/${updated['metadata']['namespace']}/${owner['name']}`);
    if (!job || job['metadata']['uid'] !== owner['uid']) return;
    this.later(() => {
      const cur = this.currentJob(job);
      if (!cur || finished(cur)) return;
      if (code === 0) {
        this.stopJobTimers(cur);
        this.updateJob(cur, (j) => {
          j['status'] = {
            ...j['status'],
            active: 0,
            succeeded: 1,
            completionTime: now(),
            conditions: [
              { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached', lastTransitionTime: now() },
              { type: 'Complete', status: 'True', reason: 'CompletionsReached', lastTransitionTime: now() },
            ],
          };
        });
        return;
      }
      const failed = (cur['status']['failed'] ?? 0) + 1;
      if (failed > (cur['spec']['backoffLimit'] as number)) {
        this.stopJobTimers(cur);
        this.updateJob(cur, (j) => {
          j['status'] = {
            ...j['status'],
            active: 0,
            failed,
            conditions: [
              { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now() },
              { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit', lastTransitionTime: now() },
            ],
          };
        });
      } else {
        this.updateJob(cur, (j) => {
          j['status'] = { ...j['status'], failed, active: 1 };
        });
        this.createPod(cur);
      }
    });
  }

  private endSim(sim: PodSim): void {
    sim.ended = true;
    for (const t of sim.timers) clearTimeout(t);
    sim.timers = [];
    for (const f of sim.followers) f.res.end();
    sim.followers.clear();
  }

  /** Removes a pod at once (its container is killed, its log followers see the end). */
  private killPod(pod: Obj): void {
    const sim = this.sims.get(this.podKey(pod));
    if (sim) this.endSim(sim);
    const cur = this.objects.get(`pods/${this.podKey(pod)}`);
    if (cur) this.emit('DELETED', 'pods', cur);
  }

  // ---- logs ----

  private log(ns: string, name: string, q: Record<string, string>, req: IncomingMessage, res: ServerResponse): void {
    const pod = this.objects.get(`pods/${ns}/${name}`);
    const sim = this.sims.get(`${ns}/${name}`);
    if (!pod || !sim) return this.status(res, 404, 'NotFound', `pods "${name}" not found`);
    const container = q['container'] ?? pod['spec']['containers'][0]['name'];
    const state = pod['status']['containerStatuses']?.[0]?.['state'] ?? {};
    if (!state['running'] && !state['terminated']) {
      return this.status(res, 400, 'BadRequest', `container "${container}" in pod "${name}" is waiting to start: ${state['waiting']?.['reason'] ?? 'ContainerCreating'}`);
    }
    const timestamps = q['timestamps'] === 'true';
    const since = q['sinceTime'] ? BigInt(Date.parse(q['sinceTime'])) * 1_000_000n : undefined;
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    for (const line of sim.lines) {
      if (since !== undefined && nanosOf(line.ts) < since) continue;
      res.write(`${timestamps ? `${line.ts} ` : ''}${line.text}\n`);
    }
    if (q['follow'] !== 'true' || sim.ended) return void res.end();
    const f = { res, timestamps };
    sim.followers.add(f);
    req.once('close', () => sim.followers.delete(f));
  }
}

// ---- selectors, patches, times ----

function selects(o: Obj, labels?: string, fields?: string): boolean {
  const have = (o['metadata']?.['labels'] ?? {}) as Record<string, string>;
  for (const term of (labels ?? '').split(',').map((t) => t.trim()).filter(Boolean)) {
    let m: RegExpExecArray | null;
    if ((m = /^([^!=]+)!=(.*)$/.exec(term))) {
      if (have[m[1]!] === m[2]) return false;
    } else if ((m = /^([^!=]+)==?(.*)$/.exec(term))) {
      if (have[m[1]!] !== m[2]) return false;
    } else if (term.startsWith('!')) {
      if (term.slice(1) in have) return false;
    } else if (!(term in have)) return false;
  }
  for (const term of (fields ?? '').split(',').map((t) => t.trim()).filter(Boolean)) {
    const m = /^([^!=]+)(!=|==|=)(.*)$/.exec(term);
    if (!m) return false;
    const value = m[1]!.split('.').reduce<unknown>((v, k) => (v as Obj | undefined)?.[k], o);
    if ((String(value) === m[3]) === (m[2] === '!=')) return false;
  }
  return true;
}

function applyJsonPatch(target: Obj, op: { op: string; path: string; value?: unknown }): void {
  const keys = op.path.split('/').slice(1).map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = keys.pop()!;
  let parent: Obj = target;
  for (const k of keys) parent = (parent[k] ??= {}) as Obj;
  if (op.op === 'add' || op.op === 'replace') {
    if (Array.isArray(parent) && last === '-') (parent as unknown[]).push(op.value);
    else (parent as Obj)[last] = structuredClone(op.value);
  } else if (op.op === 'remove') {
    delete parent[last];
  } else {
    throw new Error(`json patch op ${op.op} is not supported here`);
  }
}

function mergePatch(target: Obj, patch: Obj): void {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (typeof v === 'object' && !Array.isArray(v) && typeof target[k] === 'object' && target[k] !== null) mergePatch(target[k], v as Obj);
    else target[k] = structuredClone(v);
  }
}

function finished(job: Obj): boolean {
  return ((job['status']?.['conditions'] ?? []) as Obj[]).some((c) => (c['type'] === 'Complete' || c['type'] === 'Failed') && c['status'] === 'True');
}

function range(n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => i + 1);
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const wallAnchor = BigInt(Date.now()) * 1_000_000n;
const hrAnchor = process.hrtime.bigint();
let lastNanos = 0n;

/** RFC3339Nano as the kubelet writes it: Go trims the fraction's trailing zeros. */
function nanoTime(): string {
  let n = wallAnchor + (process.hrtime.bigint() - hrAnchor);
  if (n <= lastNanos) n = lastNanos + 1n;
  lastNanos = n;
  const secs = new Date(Number(n / 1_000_000_000n) * 1000).toISOString().slice(0, 19);
  const frac = (n % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${secs}${frac ? `.${frac}` : ''}Z`;
}

function nanosOf(ts: string): bigint {
  const m = /^(.*?)(?:\.(\d+))?Z$/.exec(ts)!;
  return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

// ---- which (resource, verb) pairs the requests used ----

/** "resource verb" for each recorded request, as RBAC sees it: "jobs create", "pods/log get", … */
export function rbacVerbs(requests: RecordedRequest[]): Set<string> {
  const out = new Set<string>();
  for (const r of requests) {
    if (r.fromTest) continue;
    const m = /^\/(?:api\/v1|apis\/[^/]+\/[^/]+)\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+)(?:\/([^/]+))?)?$/.exec(r.path);
    if (!m) continue;
    const resource = m[3] ? `${m[1]}/${m[3]}` : m[1]!;
    const item = m[2] !== undefined;
    const verb =
      r.method === 'GET'
        ? item
          ? 'get'
          : r.query['watch'] === 'true' || r.query['watch'] === '1'
            ? 'watch'
            : 'list'
        : ({ POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: item ? 'delete' : 'deletecollection' } as Record<string, string>)[r.method] ?? r.method;
    out.add(`${resource} ${verb}`);
  }
  return out;
}
