// Real nats-server and etcd for tests: random ports, a fresh temp dir, and cleanup that happens
// even when the test run is aborted (children are killed on process exit and on SIGINT/SIGTERM).
// NATS authenticates, as in production: GRID's operator and account keys are made in
// `<dir>/nats-auth` (a controller under test is pointed at them), and tests that talk to NATS
// themselves connect as `natsUser`, a user of the GRID account with every permission.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atExit } from './exit-hook.js';
import { startEtcd, startNats } from '../../src/embedded/index.js';
import { NatsAuthority } from '../../src/bus/authority.js';
import { connectBus, type NatsUser } from '../../src/bus/connect.js';
import type { NatsConnection } from '@nats-io/nats-core';

export interface TestServers {
  natsUrl: string;
  etcdEndpoint: string;
  dir: string;
  /** GRID's NATS keys for this server (the controller's nats.auth_dir). */
  natsAuthDir: string;
  authority: NatsAuthority;
  /** A user with every permission in the GRID account. */
  natsUser: NatsUser;
  /** A connection as natsUser. */
  connectNats(name?: string): Promise<NatsConnection>;
  natsPid: number;
  etcdPid: number;
  /** Stops both servers and removes `dir`; a second call returns the first's promise. */
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** etcd's --max-request-bytes (default 16 MiB, as embedded), for tests of what etcd refuses. */
  etcdMaxRequestBytes?: number;
}

export async function startServers(o: ServerOptions = {}): Promise<TestServers> {
  atExit(killLeftovers);
  const dir = mkdtempSync(join(tmpdir(), 'grid-test-'));
  leftovers.dirs.add(dir);
  const natsAuthDir = join(dir, 'nats-auth');
  const authority = await NatsAuthority.open(natsAuthDir, { create: true });
  const own = await authority.mintOwnUser('test-admin');
  const natsUser: NatsUser = { jwt: own.jwt, seed: own.seed };
  const [nats, etcd] = await Promise.allSettled([
    startNats({ dataDir: join(dir, 'nats'), logFile: join(dir, 'nats-server.log'), auth: { config: await authority.serverConfig(join(dir, 'nats', 'jwt')), user: natsUser } }).then(track),
    startEtcd({ dataDir: join(dir, 'etcd'), logFile: join(dir, 'etcd.log'), maxRequestBytes: o.etcdMaxRequestBytes }).then(track),
  ]);

  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      await Promise.allSettled(
        [nats, etcd].map(async (r) => {
          if (r.status !== 'fulfilled') return;
          await r.value.stop();
          leftovers.pids.delete(r.value.pid);
        }),
      );
      rmSync(dir, { recursive: true, force: true });
      leftovers.dirs.delete(dir);
    })());

  if (nats.status === 'rejected' || etcd.status === 'rejected') {
    await stop();
    throw nats.status === 'rejected' ? nats.reason : (etcd as PromiseRejectedResult).reason;
  }
  const natsUrl = nats.value.url;
  authDirs.set(natsUrl, natsAuthDir);
  return {
    natsUrl,
    etcdEndpoint: etcd.value.endpoint,
    dir,
    natsAuthDir,
    authority,
    natsUser,
    connectNats: (name = 'test') => connectBus({ servers: [natsUrl], name, user: natsUser }),
    natsPid: nats.value.pid,
    etcdPid: etcd.value.pid,
    stop,
  };
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
