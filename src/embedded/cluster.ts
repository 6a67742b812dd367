// The controller's dev mode: supervise a local nats-server and etcd under one data folder, with
// ports that stay the same across restarts and cleanup of servers a crashed controller left behind.
// A server that dies is started again on its ports, data dir and certificates (supervisor.ts).

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { NatsTls } from '../bus/connect.js';
import type { EtcdTls } from '../store/kv.js';
import { startEtcd, type EtcdOptions, type EtcdServer } from './etcd.js';
import { startNats, type NatsOptions, type NatsServer } from './nats.js';
import { isPortFree } from './ports.js';
import { removePidFile, stopStale, writePidFile } from './stale.js';
import { Supervisor, type RestartPolicy, type SupervisionEvent } from './supervisor.js';

export type EmbeddedServerName = 'nats' | 'etcd';

export interface EmbeddedClusterOptions {
  dataDir: string;
  /** Each death of a server, and each restart (or failed one); the caller logs them. */
  onEvent?: (event: SupervisionEvent<EmbeddedServerName>) => void;
  /** Backoff of the restarts (default: 0.5 s doubling to 10 s, from the start after 30 s up). */
  restartPolicy?: Partial<RestartPolicy>;
  /** NATS authentication: the server's operator/resolver block (given where account JWTs are kept) and the probe's user. */
  natsAuth?: { serverConfig: (resolverDir: string) => Promise<string>; user: NonNullable<NatsOptions['auth']>['user'] };
  /** TLS on both servers' client ports (and etcd's peer port), from these PEM files. */
  tls?: EmbeddedTls;
}

/**
 * The caller's PEM files. The server certificate names 127.0.0.1 and localhost (SAN) and allows
 * client authentication as well as server authentication (etcd 3.4 dials its own gRPC port with
 * it); the client certificate (clientAuth) is what etcd requires of every client.
 */
export interface EmbeddedTls {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

export interface EmbeddedCluster {
  natsUrl: string;
  /** `https://…` with TLS. */
  etcdEndpoint: string;
  /** With TLS: what a client of each server needs (Kv's `tls`, connectBus's `tls`); undefined without. */
  etcdTls: EtcdTls | undefined;
  natsTls: NatsTls | undefined;
  /** The processes running now: a restarted server is a new process on the same ports. */
  readonly nats: NatsServer;
  readonly etcd: EtcdServer;
  /** Stops restarting servers that die (they keep running); what a controller does first on close. */
  halt(): Promise<void>;
  /** Halts, then stops both servers (each even if the other fails); a second call returns the first's promise. */
  stop(): Promise<void>;
  /** Halts, then SIGKILLs both servers (cutting a stop() under way short); resolves when both have exited. */
  kill(): Promise<void>;
}

/** Saved in `<dataDir>/embedded.json` so executors told the NATS URL keep working across restarts. */
interface SavedPorts {
  nats?: number;
  etcdClient?: number;
  etcdPeer?: number;
}

const HOST = '127.0.0.1';

export async function startEmbeddedCluster(options: EmbeddedClusterOptions): Promise<EmbeddedCluster> {
  // Absolute, because stale-process detection looks for this exact path on the command line.
  const dataDir = resolve(options.dataDir);
  const layout = {
    nats: join(dataDir, 'nats'),
    etcd: join(dataDir, 'etcd'),
    logs: join(dataDir, 'logs'),
    ports: join(dataDir, 'embedded.json'),
    natsPid: join(dataDir, 'nats-server.pid'),
    etcdPid: join(dataDir, 'etcd.pid'),
  };
  mkdirSync(layout.logs, { recursive: true });

  // A previous controller killed with -9 leaves its servers running on the saved ports.
  await Promise.all([
    stopStale(layout.natsPid, 'nats-server', layout.nats),
    stopStale(layout.etcdPid, 'etcd', layout.etcd),
  ]);

  const saved = readPorts(layout.ports);
  const [natsPort, etcdClient, etcdPeer] = await Promise.all([
    reusable(saved.nats),
    reusable(saved.etcdClient),
    reusable(saved.etcdPeer),
  ]);

  const tls = options.tls;
  const natsOptions = async (port: number | undefined): Promise<NatsOptions> => ({
    dataDir: layout.nats,
    host: HOST,
    ...(port !== undefined ? { port } : {}),
    logFile: join(layout.logs, 'nats-server.log'),
    // Made anew at each start: the account JWT carries the revocations pushed since.
    ...(options.natsAuth ? { auth: { config: await options.natsAuth.serverConfig(join(layout.nats, 'jwt')), user: options.natsAuth.user } } : {}),
    ...(tls ? { tls: { cert_file: tls.serverCertFile, key_file: tls.serverKeyFile, ca_file: tls.caFile } } : {}),
  });
  const etcdOptions = (ports: { clientPort: number; peerPort: number } | undefined): EtcdOptions => ({
    dataDir: layout.etcd,
    host: HOST,
    // Reuse the pair only together; etcd picks both anew otherwise.
    ...ports,
    logFile: join(layout.logs, 'etcd.log'),
    ...(tls ? { tls: { caFile: tls.caFile, certFile: tls.serverCertFile, keyFile: tls.serverKeyFile, clientCertFile: tls.clientCertFile, clientKeyFile: tls.clientKeyFile } } : {}),
  });

  const nats = await startNats(await natsOptions(natsPort));
  writePidFile(layout.natsPid, nats.pid);
  let etcd: EtcdServer;
  try {
    etcd = await startEtcd(etcdOptions(etcdClient !== undefined && etcdPeer !== undefined ? { clientPort: etcdClient, peerPort: etcdPeer } : undefined));
  } catch (err) {
    await nats.stop();
    removePidFile(layout.natsPid);
    throw err;
  }
  writePidFile(layout.etcdPid, etcd.pid);
  writePorts(layout.ports, { nats: nats.port, etcdClient: etcd.clientPort, etcdPeer: etcd.peerPort });

  // Restarts reuse the ports of the first start: executors were told the NATS URL, clients the etcd endpoint.
  const natsSupervisor = new Supervisor(nats, {
    name: 'nats' as const,
    start: async () => startNats(await natsOptions(nats.port)),
    onStarted: (s) => writePidFile(layout.natsPid, s.pid),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.restartPolicy ? { policy: options.restartPolicy } : {}),
  });
  const etcdSupervisor = new Supervisor(etcd, {
    name: 'etcd' as const,
    start: () => startEtcd(etcdOptions({ clientPort: etcd.clientPort, peerPort: etcd.peerPort })),
    onStarted: (s) => writePidFile(layout.etcdPid, s.pid),
    ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    ...(options.restartPolicy ? { policy: options.restartPolicy } : {}),
  });

  let halting: Promise<void> | undefined;
  const halt = (): Promise<void> => (halting ??= Promise.all([natsSupervisor.halt(), etcdSupervisor.halt()]).then(() => undefined));
  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      await halt();
      const results = await Promise.allSettled([natsSupervisor.stop(), etcdSupervisor.stop()]);
      removePidFile(layout.natsPid);
      removePidFile(layout.etcdPid);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })());

  const kill = async (): Promise<void> => {
    await Promise.allSettled([natsSupervisor.kill(), etcdSupervisor.kill()]);
    removePidFile(layout.natsPid);
    removePidFile(layout.etcdPid);
  };

  return {
    natsUrl: nats.url,
    etcdEndpoint: etcd.endpoint,
    etcdTls: tls && { ca_file: tls.caFile, cert_file: tls.clientCertFile, key_file: tls.clientKeyFile },
    natsTls: tls && { ca_file: tls.caFile, cert_file: '', key_file: '' },
    get nats() {
      return natsSupervisor.server;
    },
    get etcd() {
      return etcdSupervisor.server;
    },
    halt,
    stop,
    kill,
  };
}

async function reusable(port: number | undefined): Promise<number | undefined> {
  return port !== undefined && (await isPortFree(HOST, port)) ? port : undefined;
}

function readPorts(file: string): SavedPorts {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    const port = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 65536 ? v : undefined);
    return { nats: port(raw.nats), etcdClient: port(raw.etcdClient), etcdPeer: port(raw.etcdPeer) };
  } catch {
    return {};
  }
}

function writePorts(file: string, ports: Required<SavedPorts>): void {
  writeFileSync(file, `${JSON.stringify({ host: HOST, ...ports }, null, 2)}\n`);
}
