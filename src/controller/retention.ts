// Retention of finished executions: those older than the configured age, and the oldest beyond
// the configured count, are deleted with their index entries, in batches, by every replica
// (each delete is guarded, so two replicas pruning at once delete each execution once). What
// was pruned is kept in one small key, so that a list can say older executions are gone.

import type { Logger } from '../util/log.js';
import type { ExecutionStore, FinishedEntry, RetentionStatus } from '../store/store.js';

export type { RetentionStatus } from '../store/store.js';
import { idTime } from '../util/ids.js';

export interface RetentionPolicy {
  /** Finished executions created longer ago than this are deleted. */
  maxAgeMs: number;
  /** At most this many finished executions are kept; the oldest go first. */
  maxFinished: number;
}

/** Deletions per round; a pass goes on round after round while there is more to delete. */
const BATCH = 2_000;

export function describePolicy(p: RetentionPolicy): string {
  const days = p.maxAgeMs / 86_400_000;
  const age = Number.isInteger(days) ? `${days} day${days === 1 ? '' : 's'}` : `${Math.round(p.maxAgeMs / 3_600_000)} h`;
  return `${age}, at most ${p.maxFinished} finished`;
}

export class Retention {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;

  readonly policy: RetentionPolicy;

  constructor(
    private readonly d: {
      store: Pick<ExecutionStore, 'countFinished' | 'oldestFinished' | 'deleteFinished' | 'retentionStatus' | 'recordPruned'>;
      policy: RetentionPolicy;
      log: Logger;
      /** Between passes; default one minute. */
      intervalMs?: number;
      now?: () => number;
    },
  ) {
    this.policy = d.policy;
  }

  start(): void {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.pass()
        .catch((err: Error) => this.d.log.warn('pruning finished executions failed; trying again later', { error: err.message }))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.d.intervalMs ?? 60_000);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  status(): Promise<RetentionStatus> {
    return this.d.store.retentionStatus();
  }

  /** Deletes what the policy no longer keeps; returns how many. */
  async pass(): Promise<number> {
    const { store, policy } = this.d;
    let total = 0;
    while (!this.stopped) {
      const excess = (await store.countFinished()) - policy.maxFinished;
      const cutoff = (this.d.now?.() ?? Date.now()) - policy.maxAgeMs;
      const oldest = await store.oldestFinished(BATCH);
      // Oldest first: the excess by count, then whatever else is past the age.
      const doomed: FinishedEntry[] = oldest.filter((e, i) => i < excess || idTime(e.id) < cutoff);
      if (!doomed.length) break;
      const deleted = await store.deleteFinished(doomed);
      total += deleted;
      await this.record(doomed, deleted);
      if (deleted === 0) break;
    }
    if (total) this.d.log.info('pruned finished executions', { deleted: total, policy: describePolicy(policy) });
    return total;
  }

  private async record(doomed: FinishedEntry[], deleted: number): Promise<void> {
    await this.d.store.recordPruned(Math.max(...doomed.map((e) => idTime(e.id))), deleted);
  }

}
