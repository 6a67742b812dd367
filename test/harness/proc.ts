// What /proc says about a process, for tests and benchmarks (Linux).

import { existsSync, readFileSync } from 'node:fs';

/** VmRSS of a process in bytes (0 if it is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** True while `pid` runs: a zombie (dead, not yet reaped by its parent) counts as gone. */
export function processAlive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    // Field 3 (after the parenthesised command) is the state; Z = zombie (dead, not reaped).
    const text = readFileSync(stat, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}
