// What /proc says about a process, for tests and benchmarks (Linux).

import { existsSync, readdirSync, readFileSync } from 'node:fs';

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

/** The live processes whose command line mentions `text` (a data dir, say), with their argv. */
export function processesMentioning(text: string): Array<{ pid: number; argv: string[] }> {
  const found: Array<{ pid: number; argv: string[] }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue; // gone meanwhile
    }
    const pid = Number(entry);
    if (argv.some((a) => a.includes(text)) && processAlive(pid)) found.push({ pid, argv });
  }
  return found;
}
