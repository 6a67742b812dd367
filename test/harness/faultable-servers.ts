// The test servers of servers.ts with faults on top, for the chaos suite: a nats-server node or
// an etcd member killed -9 and started again on the same ports and data dir, or paused (SIGSTOP)
// and resumed. `node` picks one node of a cluster (default the first; the only one without).
// Whatever is started here is stopped by stop() (and SIGKILLed if the process ends first).

import { setTimeout as delay } from 'node:timers/promises';
import { processAlive } from './proc.js';
import { startServers, type ServerName, type ServerOptions, type TestServers } from './servers.js';

export type { ServerName } from './servers.js';

export interface FaultableServers extends TestServers {
  /** The pid of the server running now (after a restart, the new one). */
  pid(which: ServerName, node?: number): number;
  /** kill -9; resolves once the process is gone. */
  kill9(which: ServerName, node?: number): Promise<void>;
  /** Starts it again after kill9, on the same ports and data dir; resolves once it answers. */
  restart(which: ServerName, node?: number): Promise<void>;
  /** SIGSTOP: the process stays, its sockets stay open, nothing answers. */
  pause(which: ServerName, node?: number): void;
  /** SIGCONT after pause(). */
  resume(which: ServerName, node?: number): void;
}

export async function startFaultableServers(o: ServerOptions = {}): Promise<FaultableServers> {
  const servers = await startServers(o);
  const at = (which: ServerName, node = 0) => {
    const n = servers.nodes[which][node];
    if (!n) throw new Error(`there is no ${which} node ${node} (${servers.nodes[which].length} running)`);
    return n;
  };
  const paused = new Set<{ pid: number }>();

  let closing: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (closing ??= (async () => {
      for (const n of paused) signal(n.pid, 'SIGCONT');
      await servers.stop();
    })());

  return {
    ...servers,
    pid: (which, node) => at(which, node).pid,
    async kill9(which, node) {
      const n = at(which, node);
      signal(n.pid, 'SIGKILL');
      paused.delete(n);
      for (let i = 0; processAlive(n.pid); i++) {
        if (i > 100) throw new Error(`${which} (pid ${n.pid}) still alive 10 s after SIGKILL`);
        await delay(100);
      }
    },
    restart: (which, node) => at(which, node).restart(),
    pause(which, node) {
      const n = at(which, node);
      signal(n.pid, 'SIGSTOP');
      paused.add(n);
    },
    resume(which, node) {
      const n = at(which, node);
      signal(n.pid, 'SIGCONT');
      paused.delete(n);
    },
    stop,
  };
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}
