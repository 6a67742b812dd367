// BeginTask's claims, group-committed: the claims asked while a write is in flight go together
// in the next one, one compare per execution. Used by ExecutionService (executions.ts).

import { claimTask, unchangedClaim, type ClaimAnswer } from '../domain/claim-rules.js';
import { groupsOf, type ExecutorRecord } from '../domain/executor.js';
import type { Execution } from '../domain/execution.js';
import type { JobDefinition } from '../domain/job.js';
import type { TaskToRun } from '../domain/task.js';
import type { ExecutionStore, ExecutorStore } from '../store/store.js';
import { Batcher, type Pending } from '../util/batcher.js';
import type { Logger } from '../util/log.js';

export interface ClaimRequest {
  executor: ExecutorRecord;
  session: string;
  ref: { executionId: string; taskKey: string; retryOf?: number };
  /** The definition at the execution's job version, `version`. */
  def: JobDefinition;
  version: number;
  /** Asked from the store's own copy of the record (see ExecutionService.claim()). */
  ownCopy: boolean;
}

export interface ClaimOutcome {
  answer: ClaimAnswer;
  /** The task as the record the claim was made on has it, when claimed. */
  task?: TaskToRun;
  secretBox?: string;
  /** False for a request from the store's own copy that its write did not prove: ask again from a read. */
  proven: boolean;
}

/**
 * Claims, group-committed: the claims asked while a transaction is in flight are written
 * together in the next one (one compare per execution), and this write is the task's
 * PENDING → RUNNING transition, so running a task costs no other write.
 */
export function newClaimBatcher(
  d: { store: Pick<ExecutionStore, 'updateMany'>; executors: Pick<ExecutorStore, 'liveIds'>; log: Logger },
  clock: () => number,
): Batcher<ClaimRequest, ClaimOutcome> {
  return new Batcher<ClaimRequest, ClaimOutcome>({
    max: 512,
    run: async (batch) => {
      const live = await d.executors.liveIds();
      const now = clock();
      const byExecution = new Map<string, Array<Pending<ClaimRequest, ClaimOutcome>>>();
      for (const p of batch) {
        const list = byExecution.get(p.item.ref.executionId) ?? [];
        list.push(p);
        byExecution.set(p.item.ref.executionId, list);
      }
      const outcomes = new Map<Pending<ClaimRequest, ClaimOutcome>, ClaimOutcome>();
      // Claims one execution's record: with `apply`, on the store's copy for the write (true when
      // there is something to write); without, on the record as it is, only to find whether
      // any claim has something to write (true) or all are answered as they stand (false).
      // Redelivered and repeated claims of a big fan-out change nothing, and are answered
      // without copying its record.
      const claimAll = (x: Execution, apply: boolean): boolean => {
        let changed = false;
        for (const p of byExecution.get(x.id) ?? []) {
          const { executor: e, session, ref, def, version, ownCopy } = p.item;
          // What is handed out comes from the record the claim is made on, never from the copy
          // the request started from; the definition must be that record's job version's.
          if (x.job !== def.name || x.job_version !== version) {
            outcomes.set(p, { answer: { claimed: false, reason: `execution ${x.id} is of job ${x.job} version ${x.job_version}, not ${def.name} version ${version}` }, proven: !ownCopy });
            continue;
          }
          const c = { id: e.id, name: e.name, groups: groupsOf(e), session };
          const o = { onLost: def.on_lost ?? 'retry', maxAttempts: def.retries?.max_attempts ?? 1, retryOf: ref.retryOf, alive: (id: string) => live.has(id) };
          let a: ClaimAnswer;
          if (apply) {
            const r = claimTask(x, ref.taskKey, c, now, o);
            changed = r.changed || changed;
            a = r;
          } else {
            const same = unchangedClaim(x, ref.taskKey, c, now, o);
            if (!same) return true;
            a = same;
          }
          outcomes.set(p, { answer: a, proven: true, ...(a.claimed ? { task: taskToRun(x, def), secretBox: x.secret_box } : {}) });
        }
        return changed;
      };
      const results = await d.store.updateMany(
        [...byExecution.keys()],
        (x) => claimAll(x, true),
        (x) => claimAll(x, false),
      );
      for (const [id, r] of results) {
        for (const p of byExecution.get(id) ?? []) {
          const o = outcomes.get(p);
          // From the store's own copy, only an answer its write proved counts (see ExecutionService.claim()).
          if (o && p.item.ownCopy && (!r.changed || r.refused)) o.proven = false;
        }
        // A claim that made its record too large to store was not recorded: the execution failed instead.
        if (!r.refused) continue;
        d.log.warn('claims not recorded: the record would be too large to store', { id, state: r.execution.state, reason: r.refused });
        for (const p of byExecution.get(id) ?? []) {
          outcomes.set(p, { answer: { claimed: false, reason: `execution ${id} is ${r.execution.state}: ${r.refused}` }, proven: !p.item.ownCopy });
        }
      }
      for (const p of batch) {
        p.resolve(outcomes.get(p) ?? { answer: { claimed: false, reason: `execution ${p.item.ref.executionId} does not exist` }, proven: !p.item.ownCopy });
      }
    },
  });
}

/**
 * The task as the record has it, for the executor it belongs to: the definition at the
 * execution's version, its arguments, limits and file digests. Secrets are left to the caller.
 */
export function taskToRun(x: Execution, def: JobDefinition): TaskToRun {
  return {
    job: x.job,
    jobVersion: x.job_version,
    definition: def,
    args: x.args,
    deadlineMs: x.deadline_ms,
    timeoutMs: (def.timeout_seconds ?? 0) * 1000,
    maxAttempts: def.retries?.max_attempts ?? 1,
    backoffMs: (def.retries?.backoff_seconds ?? 0) * 1000,
    files: def.files.map((f) => ({ ...f, digest: x.file_digests?.[f.name] ?? '' })),
  };
}
