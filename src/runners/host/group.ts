// Process-group probes and signals for the host runner.
//
// kill(-pgid, 0) also succeeds while the group holds only zombies: orphans whose new parent does
// not reap them (an executor running as PID 1 in a container, or a minimal init). On Linux those
// are told apart through /proc, so a stop does not wait out the whole grace period for the dead.

import { readdir, readFile } from 'node:fs/promises';

/** True while any live (non-zombie) process of group `pgid` exists; one we may not signal counts. */
export async function groupAlive(pgid: number): Promise<boolean> {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  if (process.platform !== 'linux') return true;
  try {
    return await hasLiveMember(pgid);
  } catch {
    return true;
  }
}

async function hasLiveMember(pgid: number): Promise<boolean> {
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // "pid (comm) state ppid pgrp …" — comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Signals the group; false when it no longer exists. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
