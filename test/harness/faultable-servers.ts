// The test servers of servers.ts with faults on top, for the chaos suite: nats-server or etcd
// killed -9 and started again on the same port and data dir, or paused (SIGSTOP) and resumed.
// Whatever is started here is stopped by stop() (and SIGKILLed if the process ends first).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { startEtcd, startNats } from '../../src/embedded/index.js';
import { atExit } from './exit-hook.js';
import { processAlive } from './pipeline-fleet.js';
import { startServers, type TestServers } from './servers.js';

export type ServerName = 'nats' | 'etcd';

export interface FaultableServers extends TestServers {
  /** The pid of the server running now (after a restart, the new one). */
  pid(which: ServerName): number;
  /** kill -9; resolves once the process is gone. */
  kill9(which: ServerName): Promise<void>;
  /** Starts it again after kill9, on the same port and data dir; resolves once it answers. */
  restart(which: ServerName): Promise<void>;
  /** SIGSTOP: the process stays, its sockets stay open, nothing answers. */
  pause(which: ServerName): void;
  /** SIGCONT after pause(). */
  resume(which: ServerName): void;
}

interface Replacement {
  pid: number;
  stop(): Promise<void>;
}

export async function startFaultableServers(): Promise<FaultableServers> {
  const servers = await startServers();
  const pids: Record<ServerName, number> = { nats: servers.natsPid, etcd: servers.etcdPid };
  const paused = new Set<ServerName>();
  // etcd keeps its peer URL in its data dir: a restart listens on the same peer port.
  const etcdPeerPort = peerPortOf(servers.etcdPid);
  const replacements = new Map<ServerName, Replacement>();
  const killReplacements = (): void => {
    for (const r of replacements.values()) signal(r.pid, 'SIGKILL');
  };
  atExit(killReplacements);

  const restart = async (which: ServerName): Promise<void> => {
    if (processAlive(pids[which])) throw new Error(`${which} (pid ${pids[which]}) is still running: kill9 it before restart()`);
    const started =
      which === 'nats'
        ? await startNats({
            dataDir: join(servers.dir, 'nats'),
            logFile: join(servers.dir, 'nats-server.log'),
            port: Number(new URL(servers.natsUrl).port),
            auth: { config: await servers.authority.serverConfig(join(servers.dir, 'nats', 'jwt')), user: servers.natsUser },
          })
        : await startEtcd({
            dataDir: join(servers.dir, 'etcd'),
            logFile: join(servers.dir, 'etcd.log'),
            clientPort: Number(new URL(servers.etcdEndpoint).port),
            peerPort: etcdPeerPort,
          });
    replacements.set(which, { pid: started.pid, stop: started.stop });
    pids[which] = started.pid;
  };

  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      for (const which of paused) signal(pids[which], 'SIGCONT');
      await Promise.allSettled([...replacements.values()].map((r) => r.stop()));
      await servers.stop();
    })());

  return {
    ...servers,
    pid: (which) => pids[which],
    async kill9(which) {
      signal(pids[which], 'SIGKILL');
      paused.delete(which);
      for (let i = 0; processAlive(pids[which]); i++) {
        if (i > 100) throw new Error(`${which} (pid ${pids[which]}) still alive 10 s after SIGKILL`);
        await delay(100);
      }
    },
    restart,
    pause(which) {
      signal(pids[which], 'SIGSTOP');
      paused.add(which);
    },
    resume(which) {
      signal(pids[which], 'SIGCONT');
      paused.delete(which);
    },
    stop,
  };
}

/** The peer port etcd listens on, from its command line (`--listen-peer-urls http://host:port`). */
function peerPortOf(pid: number): number {
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const url = argv[argv.indexOf('--listen-peer-urls') + 1];
  const port = url ? Number(new URL(url).port) : NaN;
  if (!Number.isInteger(port) || port <= 0) throw new Error(`cannot read etcd's peer port from its command line: ${argv.join(' ')}`);
  return port;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
