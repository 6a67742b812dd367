// The executor's link to the controller, in the executor's own terms: claim tasks, heartbeat,
// deregister, read a task's files. The worker and the heartbeat depend on this interface only;
// grpcLink below is the one implementation (over GridClient), and tests can give their own.

import type { GridClient } from '../client/client.js';
import type { JobDefinition } from '../domain/job.js';
import type { TaskToRun } from '../domain/task.js';
import { NotImplementedError, UnavailableError } from '../errors.js';
import { ExecutorState } from '../gen/grid/v1/types.js';
import type { BeginTaskResponse, HeartbeatResponse, TaskToRun as TaskToRunPb } from '../gen/grid/v1/executor.js';
import { BeatStream } from './beat-stream.js';

/** A task to claim; `retryOf` names the attempt this process ran and now retries. */
export interface ClaimRef {
  executionId: string;
  taskKey: string;
  retryOf?: number;
}

/** The controller's answer to a claim. */
export interface Claim {
  proceed: boolean;
  /** Why not, when not proceeding. */
  reason: string;
  /** Not now (a later rollout wave, or another live executor holds it): offer it again later. */
  later: boolean;
  /** The attempt this claim is (attempts are claims, counted by the controller). */
  attempt: number;
  secrets: Record<string, string>;
  /** What to run; undefined when not proceeding, or when the answer carried none usable. */
  task?: TaskToRun;
  /** Set when the answer said proceed but its task could not be read. */
  unusable?: string;
  /** A fencing token handed out with the claim (0 = none; serialize locks are taken later). */
  lockToken: number;
}

export interface RunningRef {
  executionId: string;
  taskKey: string;
  attempt: number;
}

export interface HeartbeatStatus {
  version: string;
  runningTasks: number;
  load: number;
  draining: boolean;
  running: RunningRef[];
}

export interface TaskStopOrder {
  executionId: string;
  taskKey: string;
  reason: 'cancelled' | 'timed_out' | 'superseded';
  note: string;
}

export interface HeartbeatAnswer {
  state: string;
  pingDeadlineSeconds: number;
  cancelledExecutions: string[];
  stop: TaskStopOrder[];
}

export interface ControllerLink {
  /** Claims tasks for this executor process (`session`); answers in the order asked. */
  beginTasks(session: string, refs: ClaimRef[], timeoutMs: number): Promise<Claim[]>;
  heartbeat(status: HeartbeatStatus, timeoutMs: number): Promise<HeartbeatAnswer>;
  /** Ends the heartbeat stream, where heartbeats are carried on one (the executor stops). */
  closeHeartbeats?(): void;
  deregister(timeoutMs: number): Promise<void>;
  /** One of a task's files, in chunks; the controller checks that this task may read it. */
  taskFile(ref: { executionId: string; taskKey: string }, name: string, signal: AbortSignal): AsyncIterable<Uint8Array>;
}

/**
 * The ControllerLink over gRPC. Heartbeats go on one stream (unless `heartbeatStream` is false);
 * a controller that does not know the stream gets a Heartbeat call each, and one that does not
 * know BeginTasks is asked task by task.
 */
export function grpcLink(client: GridClient, executorId: string, executorSecret: string, o: { heartbeatStream?: boolean } = {}): ControllerLink {
  const c = client;
  const auth = { executorId, executorSecret };
  let beginTasksKnown = true;
  // Heartbeats go on one stream (Heartbeats) while the controller has it.
  let streamKnown = o.heartbeatStream ?? true;
  let beats: BeatStream | undefined;
  const beatOnStream = async (s: HeartbeatStatus, timeoutMs: number): Promise<HeartbeatResponse> => {
    for (let again = true; ; again = false) {
      if (!beats?.open) {
        const { call, fail } = c.duplex(c.executors, c.executors.heartbeats);
        beats = new BeatStream(call, fail, auth);
      }
      const stream = beats;
      try {
        return await stream.send(s, timeoutMs);
      } catch (err) {
        // Ended by the controller without refusing this executor (it was registered again, its
        // certificate renewed, the controller is stopping): open another stream at once, once.
        // A heartbeat that was only late leaves the stream open, and is not sent again.
        if (again && err instanceof UnavailableError && !stream.open && !stream.stalled) continue;
        throw err;
      }
    }
  };
  return {
    async beginTasks(session, refs, timeoutMs) {
      if (refs.length > 1 && beginTasksKnown) {
        try {
          const tasks = refs.map((r) => ({ executionId: r.executionId, taskKey: r.taskKey, attempt: r.retryOf ?? 0 }));
          const res = await c.call(c.executors, c.executors.beginTasks, { ...auth, session, tasks }, timeoutMs);
          if (res.results.length < refs.length) throw new Error('the controller answered BeginTasks for fewer tasks than asked');
          return res.results.slice(0, refs.length).map(claimFromPb);
        } catch (err) {
          if (!(err instanceof NotImplementedError)) throw err;
          beginTasksKnown = false;
        }
      }
      return Promise.all(
        refs.map(async (r) =>
          claimFromPb(
            await c.call(c.executors, c.executors.beginTask, { ...auth, session, executionId: r.executionId, taskKey: r.taskKey, attempt: 0, retryOf: r.retryOf ?? 0 }, timeoutMs),
          ),
        ),
      );
    },
    async heartbeat(s, timeoutMs) {
      let res: HeartbeatResponse | undefined;
      if (streamKnown) {
        try {
          res = await beatOnStream(s, timeoutMs);
        } catch (err) {
          if (!(err instanceof NotImplementedError)) throw err;
          // A controller older than the stream: a call for each heartbeat, as before.
          streamKnown = false;
          beats = undefined;
        }
      }
      res ??= await c.call(c.executors, c.executors.heartbeat, { ...auth, ...s }, timeoutMs);
      return {
        state: (ExecutorState[res.state] ?? 'UNKNOWN').replace('EXECUTOR_STATE_', ''),
        pingDeadlineSeconds: res.pingDeadlineSeconds,
        cancelledExecutions: res.cancelledExecutions ?? [],
        stop: (res.stop ?? []).map((t) => ({
          executionId: t.executionId,
          taskKey: t.taskKey,
          reason: t.reason === 'timed_out' || t.reason === 'superseded' ? t.reason : 'cancelled',
          note: t.note,
        })),
      };
    },
    async deregister(timeoutMs) {
      beats?.close();
      await c.call(c.executors, c.executors.deregister, auth, timeoutMs);
    },
    closeHeartbeats() {
      beats?.close();
    },
    taskFile(ref, name, signal) {
      const req = { ...auth, ...ref, name };
      return (async function* () {
        for await (const chunk of c.stream(c.executors, c.executors.getTaskFile, req, signal)) yield chunk.data;
      })();
    },
  };
}

function claimFromPb(r: BeginTaskResponse): Claim {
  const claim: Claim = { proceed: r.proceed, reason: r.reason, later: r.later, attempt: r.attempt, secrets: r.secrets ?? {}, lockToken: Number(r.lockToken ?? 0) };
  if (r.proceed) {
    try {
      claim.task = taskFromPb(r.task);
    } catch (err) {
      claim.unusable = (err as Error).message;
    }
  }
  return claim;
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
