// Real nats-server and etcd for tests: random ports, a fresh temp dir, and cleanup that happens
// even when the test run is aborted (children are killed on process exit and on SIGINT/SIGTERM).

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { atExit } from './exit-hook.js';
import { startEtcd, startNats } from '../../src/embedded/index.js';

export interface TestServers {
  natsUrl: string;
  etcdEndpoint: string;
  dir: string;
  natsPid: number;
  etcdPid: number;
  /** Stops both servers and removes `dir`; a second call returns the first's promise. */
  stop(): Promise<void>;
}

export async function startServers(): Promise<TestServers> {
  atExit(killLeftovers);
  const dir = mkdtempSync(join(tmpdir(), 'grid-test-'));
  leftovers.dirs.add(dir);
  const [nats, etcd] = await Promise.allSettled([
    startNats({ dataDir: join(dir, 'nats'), logFile: join(dir, 'nats-server.log') }).then(track),
    startEtcd({ dataDir: join(dir, 'etcd'), logFile: join(dir, 'etcd.log') }).then(track),
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
  return { natsUrl: nats.value.url, etcdEndpoint: etcd.value.endpoint, dir, natsPid: nats.value.pid, etcdPid: etcd.value.pid, stop };
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
