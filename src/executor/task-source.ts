// What the controller says about the tasks this executor takes — its only source of what to
// run. BeginTask calls asked while one is in flight go together in one BeginTasks call (a pull
// that brought several tasks asks about them in one round trip); a controller that does not
// know BeginTasks yet is asked task by task. A task's files come from GetTaskFile.

import type { GridClient } from '../client/client.js';
import type { JobDefinition } from '../domain/job.js';
import type { TaskToRun } from '../domain/task.js';
import { NotImplementedError } from '../errors.js';
import type { BeginTaskResponse, TaskRef, TaskToRun as TaskToRunPb } from '../gen/grid/v1/executor.js';
import { Batcher } from '../util/batcher.js';

/** Most tasks asked about in one BeginTasks call. */
const MAX_BEGIN_BATCH = 64;

export class TaskSource {
  private beginTasksKnown = true;

  constructor(private readonly o: { client: GridClient; executorId: string; executorSecret: string; timeoutMs: number }) {}

  private get auth() {
    return { executorId: this.o.executorId, executorSecret: this.o.executorSecret };
  }

  private readonly begins = new Batcher<TaskRef, BeginTaskResponse>({
    max: MAX_BEGIN_BATCH,
    run: async (batch) => {
      const c = this.o.client;
      if (batch.length > 1 && this.beginTasksKnown) {
        try {
          const res = await c.call(c.executors, c.executors.beginTasks, { ...this.auth, tasks: batch.map((p) => p.item) }, this.o.timeoutMs);
          batch.forEach((p, i) => {
            const r = res.results[i];
            if (r) p.resolve(r);
            else p.reject(new Error('the controller answered BeginTasks for fewer tasks than asked'));
          });
          return;
        } catch (err) {
          if (!(err instanceof NotImplementedError)) throw err;
          this.beginTasksKnown = false;
        }
      }
      await Promise.all(batch.map((p) => c.call(c.executors, c.executors.beginTask, { ...this.auth, ...p.item }, this.o.timeoutMs).then(p.resolve, p.reject)));
    },
  });

  /** May this task run, and what is it (BeginTask, batched with others asked meanwhile). */
  begin(ref: TaskRef): Promise<BeginTaskResponse> {
    return this.begins.add(ref);
  }

  /** One of the task's files, from the controller, which checks that this task may read it. */
  fetchFile(ref: { executionId: string; taskKey: string }, name: string, signal: AbortSignal): AsyncIterable<Uint8Array> {
    const c = this.o.client;
    const req = { ...this.auth, ...ref, name };
    return (async function* () {
      for await (const chunk of c.stream(c.executors, c.executors.getTaskFile, req, signal)) yield chunk.data;
    })();
  }
}

/** BeginTask's task as the domain has it; throws when the answer carries none that can run. */
export function taskFromPb(t: TaskToRunPb | undefined): TaskToRun {
  if (!t) throw new Error('no task in the answer (is the controller older than this executor?)');
  const definition = JSON.parse(t.definitionJson) as JobDefinition;
  if (!definition || typeof definition.runner !== 'string') throw new Error('the definition has no runner');
  definition.files ??= [];
  definition.env_vars ??= { secrets: [], args: [] };
  return {
    job: t.job,
    jobVersion: t.jobVersion,
    definition,
    args: t.args ?? {},
    deadlineMs: t.deadlineMs,
    timeoutMs: t.timeoutMs,
    maxAttempts: t.maxAttempts,
    backoffMs: t.backoffMs,
    files: t.files.map((f) => ({ name: f.name, path: f.path, template: f.template, ...(f.mode ? { mode: f.mode } : {}), digest: f.digest })),
  };
}
