// Starts an etcd on loopback for the embedded default and tests: a single member, or one member
// of a cluster (its name and the initial cluster's peer URLs).

import { mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
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
  /**
   * TLS on the client and peer ports, with client certificates required (PEM files). The
   * server certificate must name the host (SAN) and allow client authentication too: etcd 3.4's
   * gateway dials its own gRPC port with it. The client pair is what the readiness probe shows.
   */
  tls?: EtcdServerTls;
  /** etcd's --max-request-bytes (default 16 MiB); tests of what etcd refuses set it lower. */
  maxRequestBytes?: number;
  /**
   * One member of a cluster: its name and every member's `name=peer URL`, comma-separated (its
   * own included). Needs fixed ports; ready once the cluster has a leader (a quorum is up). A
   * restart on the same data dir rejoins: etcd then takes the membership from its data.
   */
  member?: { name: string; initialCluster: string };
}

export interface EtcdServerTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export interface EtcdServer {
  /** `http://host:clientPort` (`https://` with TLS), what etcd3's `hosts` takes. */
  endpoint: string;
  clientPort: number;
  peerPort: number;
  pid: number;
  logFile: string;
  exited: Promise<ChildExit>;
  stop(): Promise<void>;
  /** SIGKILL, at once; resolves when it has exited. */
  kill(): Promise<void>;
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
  const scheme = options.tls ? 'https' : 'http';
  const endpoint = `${scheme}://${host}:${clientPort}`;
  const peerUrl = `${scheme}://${host}:${peerPort}`;
  const name = options.member?.name ?? 'default';
  const args = [
    '--name', name,
    '--data-dir', options.dataDir,
    '--listen-client-urls', endpoint,
    '--advertise-client-urls', endpoint,
    '--listen-peer-urls', peerUrl,
    '--initial-advertise-peer-urls', peerUrl,
    '--initial-cluster', options.member?.initialCluster ?? `${name}=${peerUrl}`,
    '--initial-cluster-state', 'new',
    // 3.4 needs the zap logger for --log-level to apply; warnings only, into our log file.
    '--logger', 'zap',
    '--log-level', 'warn',
    '--log-outputs', 'stderr',
    // A dev cluster runs for weeks; keep history bounded like an operator would.
    // An execution fanned out to thousands of executors is one record larger than etcd's 1.5 MiB default.
    '--max-request-bytes', String(options.maxRequestBytes ?? 16 * 1024 * 1024),
    '--auto-compaction-mode', 'periodic',
    '--auto-compaction-retention', '1h',
    ...(options.tls ? tlsArgs(options.tls) : []),
  ];
  const child = await spawnSupervised(binary, args, logFile);
  const failure = await awaitReady(child, {
    what: `etcd on ${host}:${clientPort}`,
    deadlineMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    probe: () => healthy(endpoint, options.tls),
  });
  if (failure) {
    await child.stop();
    return { ok: false, failure };
  }
  const value = { endpoint, clientPort, peerPort, pid: child.pid, logFile, exited: child.exited, stop: child.stop, kill: child.kill };
  return { ok: true, value };
}

// etcd 3.4 already requires client certificates once --trusted-ca-file is given; the flag says so.
function tlsArgs(tls: EtcdServerTls): string[] {
  const files = ['--cert-file', tls.certFile, '--key-file', tls.keyFile, '--trusted-ca-file', tls.caFile];
  return [...files, '--client-cert-auth', ...files.map((a) => a.replace(/^--/, '--peer-')), '--peer-client-cert-auth'];
}

async function healthy(endpoint: string, tls?: EtcdServerTls): Promise<boolean> {
  try {
    const body = JSON.parse(tls ? await httpsGet(`${endpoint}/health`, tls) : await (await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1_000) })).text()) as {
      health?: unknown;
    };
    return body.health === 'true';
  } catch {
    return false;
  }
}

/** fetch() cannot present a client certificate; node:https can. */
function httpsGet(url: string, tls: EtcdServerTls): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile), timeout: 1_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (s: string) => (body += s));
        res.on('end', () => resolve(body));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}
