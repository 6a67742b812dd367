// Real nats-server and etcd for tests: random ports, a fresh temp dir, and cleanup that happens
// even when the test run is aborted (children are killed on process exit and on SIGINT/SIGTERM).
// One of each by default; `startServers({ natsNodes: 3, etcdMembers: 3 })` starts a JetStream
// cluster (routes on loopback, one cluster name) and an etcd cluster instead, each node on its
// own ports and data dir, and each node can be started again on them after it died.
// NATS authenticates, as in production: GRID's operator and account keys are made in
// `<dir>/nats-auth` (a controller under test is pointed at them; every node of a cluster trusts
// the same operator), and tests that talk to NATS themselves connect as `natsUser`, a user of
// the GRID account with every permission.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atExit } from './exit-hook.js';
import { processAlive } from './proc.js';
import { freePort, startEtcd, startNats, type EtcdOptions, type NatsOptions } from '../../src/embedded/index.js';
import { NatsAuthority } from '../../src/bus/authority.js';
import { connectBus, type NatsUser } from '../../src/bus/connect.js';
import type { NatsConnection } from '@nats-io/nats-core';

export type ServerName = 'nats' | 'etcd';

/** One server process: a single server, or one node of a cluster. */
export interface ServerNode {
  /** Its client URL (`nats://…`, `http://…`). */
  readonly url: string;
  /** Its server_name (NATS) or member name (etcd): what its cluster calls it, e.g. as leader. */
  readonly name: string;
  /** The process running now (after a restart, the new one). */
  readonly pid: number;
  /** Starts it again on the same ports and data dir once it is gone; resolves when it answers. */
  restart(): Promise<void>;
  /** Stops the process running now (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** nats-server nodes: 1 (default) is a single server, more a JetStream cluster. */
  natsNodes?: number;
  /** etcd members: 1 (default) or a cluster. */
  etcdMembers?: number;
  /** etcd's --max-request-bytes (default 16 MiB, as embedded), for tests of what etcd refuses. */
  etcdMaxRequestBytes?: number;
}

export interface TestServers {
  /** The first NATS node's URL (the only one without a cluster). */
  natsUrl: string;
  /** Every NATS node's URL: what a client of a cluster is given. */
  natsUrls: string[];
  /** The first etcd member's endpoint. */
  etcdEndpoint: string;
  etcdEndpoints: string[];
  nodes: Record<ServerName, ServerNode[]>;
  dir: string;
  /** GRID's NATS keys for these servers (the controller's nats.auth_dir). */
  natsAuthDir: string;
  authority: NatsAuthority;
  /** A user with every permission in the GRID account. */
  natsUser: NatsUser;
  /** A connection as natsUser, to every NATS node. */
  connectNats(name?: string): Promise<NatsConnection>;
  /** The first start's processes of the first node of each. */
  natsPid: number;
  etcdPid: number;
  /** Stops every server and removes `dir`; a second call returns the first's promise. */
  stop(): Promise<void>;
}

export async function startServers(o: ServerOptions = {}): Promise<TestServers> {
  atExit(killLeftovers);
  const dir = mkdtempSync(join(tmpdir(), 'grid-test-'));
  leftovers.dirs.add(dir);
  const natsAuthDir = join(dir, 'nats-auth');
  const authority = await NatsAuthority.open(natsAuthDir, { create: true });
  const own = await authority.mintOwnUser('test-admin');
  const natsUser: NatsUser = { jwt: own.jwt, seed: own.seed };
  const plans = [
    ...(await natsPlans(dir, o.natsNodes ?? 1, authority, natsUser)),
    ...(await etcdPlans(dir, o.etcdMembers ?? 1, o.etcdMaxRequestBytes)),
  ];
  const started = await Promise.allSettled(plans.map((p) => startNode(p)));
  const nodes: Record<ServerName, ServerNode[]> = { nats: [], etcd: [] };
  started.forEach((r, i) => r.status === 'fulfilled' && nodes[plans[i]!.which].push(r.value));

  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.allSettled([...nodes.nats, ...nodes.etcd].map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
      leftovers.dirs.delete(dir);
    })());

  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const natsUrls = nodes.nats.map((n) => n.url);
  for (const url of natsUrls) authDirs.set(url, natsAuthDir);
  return {
    natsUrl: natsUrls[0]!,
    natsUrls,
    etcdEndpoint: nodes.etcd[0]!.url,
    etcdEndpoints: nodes.etcd.map((n) => n.url),
    nodes,
    dir,
    natsAuthDir,
    authority,
    natsUser,
    connectNats: (name = 'test') => connectBus({ servers: natsUrls, name, user: natsUser }),
    natsPid: nodes.nats[0]!.pid,
    etcdPid: nodes.etcd[0]!.pid,
    stop,
  };
}

/** How to start one node: `again` is given the first start, so that a restart reuses its ports. */
interface NodePlan {
  which: ServerName;
  start(): Promise<Started>;
  again(first: Started): Promise<Started>;
}

interface Started {
  url: string;
  name: string;
  pid: number;
  stop(): Promise<void>;
}

const CLUSTER_NAME = 'grid-test';

async function natsPlans(dir: string, count: number, authority: NatsAuthority, user: NatsUser): Promise<NodePlan[]> {
  // A cluster's routes name every node's route port, so all ports are picked before any start.
  const ports = count > 1 ? await freePorts(2 * count) : [];
  const routeUrl = (i: number) => `nats-route://127.0.0.1:${ports[count + i]}`;
  return Array.from({ length: count }, (_, i) => {
    const nodeDir = count > 1 ? join(dir, `nats-${i + 1}`) : join(dir, 'nats');
    const options = async (port?: number): Promise<NatsOptions> => ({
      dataDir: nodeDir,
      logFile: `${nodeDir}-server.log`,
      ...(port !== undefined ? { port } : {}),
      auth: { config: await authority.serverConfig(join(nodeDir, 'jwt')), user },
      ...(count > 1
        ? {
            port: ports[i]!,
            cluster: { name: CLUSTER_NAME, port: ports[count + i]!, routes: Array.from({ length: count }, (_, j) => j).filter((j) => j !== i).map(routeUrl) },
          }
        : {}),
    });
    const toStarted = (s: Awaited<ReturnType<typeof startNats>>): Started => ({ url: s.url, name: s.name, pid: s.pid, stop: s.stop });
    return {
      which: 'nats' as const,
      start: async () => toStarted(await startNats(await options())),
      again: async (first) => toStarted(await startNats(await options(Number(new URL(first.url).port)))),
    };
  });
}

async function etcdPlans(dir: string, count: number, maxRequestBytes?: number): Promise<NodePlan[]> {
  const ports = count > 1 ? await freePorts(2 * count) : [];
  const name = (i: number) => `member-${i + 1}`;
  const initialCluster = Array.from({ length: count }, (_, i) => `${name(i)}=http://127.0.0.1:${ports[count + i]}`).join(',');
  return Array.from({ length: count }, (_, i) => {
    const dataDir = count > 1 ? join(dir, `etcd-${i + 1}`) : join(dir, 'etcd');
    const base: EtcdOptions = {
      dataDir,
      logFile: `${dataDir}.log`,
      ...(maxRequestBytes ? { maxRequestBytes } : {}),
      ...(count > 1 ? { clientPort: ports[i]!, peerPort: ports[count + i]!, member: { name: name(i), initialCluster } } : {}),
    };
    // A single member picks its ports at the first start; etcd keeps its peer URL in its data dir.
    let peerPort = base.peerPort;
    const toStarted = (s: Awaited<ReturnType<typeof startEtcd>>): Started => ({ url: s.endpoint, name: base.member?.name ?? 'default', pid: s.pid, stop: s.stop });
    return {
      which: 'etcd' as const,
      start: async () => {
        const s = await startEtcd(base);
        peerPort = s.peerPort;
        return toStarted(s);
      },
      again: async (first) => toStarted(await startEtcd({ ...base, clientPort: Number(new URL(first.url).port), peerPort: peerPort! })),
    };
  });
}

async function startNode(plan: NodePlan): Promise<ServerNode> {
  const first = track(await plan.start());
  let current = first;
  return {
    url: first.url,
    name: first.name,
    get pid() {
      return current.pid;
    },
    async restart() {
      if (processAlive(current.pid)) throw new Error(`${plan.which} at ${first.url} (pid ${current.pid}) is still running: stop or kill it before restart()`);
      leftovers.pids.delete(current.pid);
      current = track(await plan.again(first));
    },
    async stop() {
      const s = current;
      await s.stop();
      leftovers.pids.delete(s.pid);
    },
  };
}

/** `n` distinct ports that were free a moment ago. */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** Test servers' NATS URL → their auth dir, so a controller started on them is given it. */
const authDirs = new Map<string, string>();

export function natsAuthDirOf(natsUrl: string): string | undefined {
  return authDirs.get(natsUrl);
}

/** `prefix` plus a random suffix, for streams, keys and names that must not collide between tests. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

// ---- the one module-level registry: what to kill and remove if the process ends before stop() ----

const leftovers = { pids: new Set<number>(), dirs: new Set<string>() };

function track<T extends { pid: number }>(server: T): T {
  leftovers.pids.add(server.pid);
  return server;
}

function killLeftovers(): void {
  for (const pid of leftovers.pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  leftovers.pids.clear();
  for (const dir of leftovers.dirs) rmSync(dir, { recursive: true, force: true });
  leftovers.dirs.clear();
}
