// Starts a single-member etcd on loopback for the embedded cluster and tests.

import { mkdirSync } from 'node:fs';
import { findBinary } from './binary.js';
import { awaitReady, DEFAULT_START_TIMEOUT_MS, retryOnPortClash, spawnSupervised, type Attempt, type ChildExit } from './child.js';
import { freePort } from './ports.js';

export interface EtcdOptions {
  /** etcd's --data-dir. */
  dataDir: string;
  host?: string;
  /** Fixed ports; when either is omitted free ones are picked (and re-picked on a clash). */
  clientPort?: number;
  peerPort?: number;
  /** Defaults to `<dataDir>.log` (beside, not inside: etcd warns about foreign files in its data dir); appended to. */
  logFile?: string;
  startTimeoutMs?: number;
}

export interface EtcdServer {
  /** `http://host:clientPort`, what etcd3's `hosts` takes. */
  endpoint: string;
  clientPort: number;
  peerPort: number;
  pid: number;
  logFile: string;
  exited: Promise<ChildExit>;
  stop(): Promise<void>;
}

const PORT_RETRIES = 2;

export async function startEtcd(options: EtcdOptions): Promise<EtcdServer> {
  const binary = findBinary('etcd', 'etcd-server');
  const host = options.host ?? '127.0.0.1';
  const logFile = options.logFile ?? `${options.dataDir.replace(/\/+$/, '')}.log`;
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const fixed = options.clientPort !== undefined && options.peerPort !== undefined;
  return retryOnPortClash(fixed ? 0 : PORT_RETRIES, () => startOnce(binary, host, logFile, options));
}

async function startOnce(binary: string, host: string, logFile: string, options: EtcdOptions): Promise<Attempt<EtcdServer>> {
  const clientPort = options.clientPort ?? (await freePort(host));
  let peerPort = options.peerPort ?? (await freePort(host));
  while (peerPort === clientPort) peerPort = await freePort(host);
  const endpoint = `http://${host}:${clientPort}`;
  const peerUrl = `http://${host}:${peerPort}`;
  const args = [
    '--name', 'default',
    '--data-dir', options.dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', `default=${peerUrl}`,
    '--initial-cluster-state', 'new',
    // 3.4 needs the zap logger for --log-level to apply; warnings only, into our log file.
    '--logger', 'zap',
    '--log-level', 'warn',
    '--log-outputs', 'stderr',
    // A dev cluster runs for weeks; keep history bounded like an operator would.
    // An execution fanned out to thousands of executors is one record larger than etcd's 1.5 MiB default.
    '--max-request-bytes', String(16 * 1024 * 1024),
    '--auto-compaction-mode', 'periodic',
    '--auto-compaction-retention', '1h',
  ];
  const child = await spawnSupervised(binary, args, logFile);
  const failure = await awaitReady(child, {
    what: `etcd on ${host}:${clientPort}`,
    deadlineMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    probe: () => healthy(endpoint),
  });
  if (failure) {
    await child.stop();
    return { ok: false, failure };
  }
  const value = { endpoint, clientPort, peerPort, pid: child.pid, logFile, exited: child.exited, stop: child.stop };
  return { ok: true, value };
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) });
    const body = (await res.json()) as { health?: unknown };
    return body.health === 'true';
  } catch {
    return false;
  }
}
