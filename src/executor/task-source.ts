// What the controller says about the tasks this executor takes — its only source of what to
// run. Claims asked while one is in flight go together in one BeginTasks call (a pull that
// brought several tasks claims them in one round trip). A task's files come from GetTaskFile.

import { Batcher } from '../util/batcher.js';
import type { Claim, ClaimRef, ControllerLink } from './link.js';

/** Most tasks claimed in one BeginTasks call. */
const MAX_BEGIN_BATCH = 64;

export class TaskSource {
  constructor(private readonly o: { link: ControllerLink; session: string; timeoutMs: number }) {}

  private readonly claims = new Batcher<ClaimRef, Claim>({
    max: MAX_BEGIN_BATCH,
    run: async (batch) => {
      const res = await this.o.link.beginTasks(this.o.session, batch.map((p) => p.item), this.o.timeoutMs);
      batch.forEach((p, i) => p.resolve(res[i]!));
    },
  });

  /** Claims the task for this executor process (BeginTask, batched with others asked meanwhile). */
  claim(ref: ClaimRef): Promise<Claim> {
    return this.claims.add(ref);
  }

  /** One of the task's files, from the controller, which checks that this task may read it. */
  fetchFile(ref: { executionId: string; taskKey: string }, name: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
    return this.o.link.taskFile(ref, name, signal);
  }
}
