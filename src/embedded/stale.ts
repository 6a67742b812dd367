// Pid files for the embedded servers, and stopping servers a kill -9'd controller left running.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STOP_GRACE_MS } from './child.js';

export function writePidFile(file: string, pid: number): void {
  writeFileSync(file, `${pid}\n`);
}

export function removePidFile(file: string): void {
  rmSync(file, { force: true });
}

/**
 * If `pidFile` names a live process that is really `binary` working on `dataDir` (checked through
 * /proc, so a recycled pid of someone else's process is never touched), stop it: SIGTERM, then
 * SIGKILL. Returns the pid it stopped, if any. Without /proc (not Linux) nothing is stopped.
 */
export async function stopStale(pidFile: string, binary: string, dataDir: string): Promise<number | undefined> {
  const pid = readPid(pidFile);
  if (pid === undefined || !isOurs(pid, binary, dataDir)) {
    removePidFile(pidFile);
    return undefined;
  }
  kill(pid, 'SIGTERM');
  if (!(await waitGone(pid, binary, dataDir, STOP_GRACE_MS))) {
    kill(pid, 'SIGKILL');
    await waitGone(pid, binary, dataDir, STOP_GRACE_MS);
  }
  removePidFile(pidFile);
  return pid;
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** argv[0] is the binary and the data dir is on its command line; a zombie has an empty cmdline. */
function isOurs(pid: number, binary: string, dataDir: string): boolean {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return false;
  }
  // The data dir itself (-sd, --data-dir), or a file in it (-c <dataDir>/nats.conf).
  return argv.length > 0 && basename(argv[0]!) === basename(binary) && argv.some((a) => a === dataDir || a.startsWith(`${dataDir}/`));
}

async function waitGone(pid: number, binary: string, dataDir: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (isOurs(pid, binary, dataDir)) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
