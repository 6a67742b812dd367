// The size of etcd's database, and defragmentation of the embedded one. Compaction (periodic,
// in the embedded etcd's flags) frees space inside the file for etcd to reuse, but the file
// never shrinks: after a burst of executions later pruned, most of it is free pages. When the
// file is both large and mostly free, a defragmentation rewrites it to what it holds. It blocks
// the member's reads and writes while it runs (a second or so per hundred MB), so it is done
// only when it pays, and never on an etcd GRID does not own.

import type { Logger } from '../util/log.js';
import type { Kv } from './kv.js';

export interface EtcdDbStatus {
  /** Bytes of the database file. */
  dbSize: number;
  /** Bytes of it in use; the rest is free pages left by compaction. */
  dbSizeInUse: number;
  version: string;
}

export async function etcdDbStatus(kv: Kv): Promise<EtcdDbStatus> {
  const s = await kv.wrap(() => kv.client.maintenance.status());
  return { dbSize: Number(s.dbSize), dbSizeInUse: Number(s.dbSizeInUse), version: s.version };
}

export interface DefragPolicy {
  /** Only a file at least this large is defragmented… */
  minDbBytes: number;
  /** …and only when at most this share of it is in use. */
  maxInUseRatio: number;
}

export const DEFAULT_DEFRAG: DefragPolicy = { minDbBytes: 64 * 1024 * 1024, maxInUseRatio: 0.5 };

/** Whether a database this size, this full, is worth defragmenting. */
export function worthDefragmenting(s: EtcdDbStatus, p: DefragPolicy = DEFAULT_DEFRAG): boolean {
  return s.dbSize >= p.minDbBytes && s.dbSizeInUse <= s.dbSize * p.maxInUseRatio;
}

/** Checks the embedded etcd every `intervalMs` and defragments it when worthDefragmenting says so. */
export class Defragmenter {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;

  constructor(
    private readonly d: { kv: Kv; log: Logger; policy?: DefragPolicy; intervalMs?: number },
  ) {}

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.check()
        .catch((err: Error) => this.d.log.warn('could not check or defragment etcd; trying again later', { error: err.message }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.d.intervalMs ?? 10 * 60_000);
        });
    };
    this.timer = setTimeout(tick, this.d.intervalMs ?? 10 * 60_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Defragments when it pays; returns the status before and after (after = undefined: not done). */
  async check(): Promise<{ before: EtcdDbStatus; after?: EtcdDbStatus }> {
    const { kv, log } = this.d;
    const before = await etcdDbStatus(kv);
    if (!worthDefragmenting(before, this.d.policy)) return { before };
    const started = performance.now();
    await kv.wrap(() => kv.client.maintenance.defragment());
    const after = await etcdDbStatus(kv);
    log.info('defragmented etcd', {
      db_bytes_before: before.dbSize,
      db_bytes_after: after.dbSize,
      in_use_bytes: after.dbSizeInUse,
      took_ms: Math.round(performance.now() - started),
    });
    return { before, after };
  }
}
