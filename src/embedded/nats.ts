// Starts a `nats-server -js` on loopback for the embedded default and tests: a single server, or
// one node of a JetStream cluster (routes to its peers, a cluster name).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { NatsUser } from '../bus/connect.js';
import { userAuthenticator } from '../bus/nkey-signer.js';
import { findBinary } from './binary.js';
import { awaitReady, DEFAULT_START_TIMEOUT_MS, retryOnPortClash, spawnSupervised, type Attempt, type ChildExit } from './child.js';
import { freePort } from './ports.js';

export interface NatsOptions {
  /** JetStream's store lives in `<dataDir>/jetstream`. */
  dataDir: string;
  host?: string;
  /** Fixed port; when omitted a free one is picked (and re-picked if another process grabs it first). */
  port?: number;
  /** Defaults to `<dataDir>/nats-server.log`; appended to. */
  logFile?: string;
  startTimeoutMs?: number;
  /**
   * Authentication on: `config` is the server's operator/resolver block (NatsAuthority), written
   * to `<dataDir>/nats.conf`; `user` is who the readiness probe connects as.
   */
  auth?: { config: string; user: NatsUser };
  /**
   * TLS for clients, required of every one of them (PEM files): the server's certificate and
   * key, and the CA the readiness probe verifies it with. Client certificates are not asked
   * for; NATS users authenticate with their JWT.
   */
  tls?: { cert_file: string; key_file: string; ca_file: string };
  /**
   * One node of a cluster: its route port and its peers' route URLs (`nats-route://host:port`).
   * Needs a fixed `port`; ready once the cluster has a JetStream meta leader (a quorum is up).
   */
  cluster?: { name: string; port: number; routes: string[] };
  /** nats-server's HTTP monitoring (/varz, /connz) on this loopback port: for diagnosis only, it is unauthenticated. */
  monitorPort?: number;
}

export interface NatsServer {
  url: string;
  port: number;
  /** Its server_name (what JetStream names the leader and peers of a stream by). */
  name: string;
  pid: number;
  logFile: string;
  exited: Promise<ChildExit>;
  stop(): Promise<void>;
  /** SIGKILL, at once; resolves when it has exited. */
  kill(): Promise<void>;
}

const PORT_RETRIES = 2;

export async function startNats(options: NatsOptions): Promise<NatsServer> {
  const binary = findBinary('nats-server', 'nats-server');
  const host = options.host ?? '127.0.0.1';
  const logFile = options.logFile ?? join(options.dataDir, 'nats-server.log');
  mkdirSync(options.dataDir, { recursive: true });
  const retries = options.port === undefined ? PORT_RETRIES : 0;
  return retryOnPortClash(retries, () => startOnce(binary, host, logFile, options));
}

async function startOnce(binary: string, host: string, logFile: string, options: NatsOptions): Promise<Attempt<NatsServer>> {
  const port = options.port ?? (await freePort(host));
  const url = `nats://${host}:${port}`;
  const name = `grid-embedded-${port}`;
  // nats-server 2.9 appends "jetstream" to -sd itself, so the store ends up in <dataDir>/jetstream.
  let args = ['-js', '-a', host, '-p', String(port), '-sd', options.dataDir, '-n', name];
  const confFile = join(options.dataDir, 'nats.conf');
  const conf = (auth: string) =>
    [
      `listen: "${host}:${port}"`,
      `server_name: "${name}"`,
      `jetstream { store_dir: ${JSON.stringify(options.dataDir)} }`,
      // nats-server's default handshake timeout (0.5 s) fails clients on a busy machine.
      ...(options.tls ? [`tls { cert_file: ${JSON.stringify(options.tls.cert_file)}, key_file: ${JSON.stringify(options.tls.key_file)}, timeout: 5 }`] : []),
      ...(options.cluster ? [clusterBlock(host, options.cluster)] : []),
      ...(options.monitorPort ? [`http: "127.0.0.1:${options.monitorPort}"`] : []),
      auth,
    ].join('\n');
  // With authentication, TLS or a cluster everything is in the config file (operator mode needs one).
  if (options.auth || options.tls || options.cluster || options.monitorPort) {
    writeConf(confFile, conf(options.auth?.config ?? ''));
    args = ['-c', confFile];
  }
  const child = await spawnSupervised(binary, args, logFile);
  const failure = await awaitReady(child, {
    what: `nats-server on ${host}:${port}`,
    deadlineMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    // The log line says the listener is up; the JetStream API answering says the store is usable.
    probe: async () => child.logTail(1_000).includes('Server is ready') && (await jetStreamAnswers(url, options.auth?.user, options.tls?.ca_file)),
  });
  if (failure) {
    await child.stop();
    return { ok: false, failure };
  }
  return { ok: true, value: { url, port, name, pid: child.pid, logFile, exited: child.exited, stop: child.stop, kill: child.kill } };
}

function clusterBlock(host: string, c: NonNullable<NatsOptions['cluster']>): string {
  const routes = c.routes.map((r) => JSON.stringify(r)).join(', ');
  return `cluster { name: ${JSON.stringify(c.name)}, listen: "${host}:${c.port}", routes: [${routes}] }`;
}

function writeConf(path: string, config: string): void {
  writeFileSync(path, config, { mode: 0o600 });
}

async function jetStreamAnswers(url: string, user?: NatsUser, caFile?: string): Promise<boolean> {
  let nc: NatsConnection | undefined;
  try {
    const authenticator = user ? userAuthenticator(user.jwt, user.seed) : undefined;
    nc = await connect({
      servers: url,
      timeout: 1_000,
      reconnect: false,
      ...(authenticator ? { authenticator } : {}),
      ...(caFile ? { tls: { ca: readFileSync(caFile, 'utf8') } } : {}),
    });
    const jsm = await jetstreamManager(nc, { timeout: 1_000 });
    await jsm.getAccountInfo();
    return true;
  } catch {
    return false;
  } finally {
    await nc?.close().catch(() => undefined);
  }
}
