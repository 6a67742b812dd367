// The executor's worker against a real nats-server and a stand-in controller (a tiny gRPC server
// answering BeginTask from its own record of the tasks; job messages are pointers): tasks taken from GRID_JOBS, run by the host runner, events and logs read
// back from GRID_EVENTS and GRID_LOGS. Behaviour only, no timings.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { Server, ServerCredentials, status, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureExecutorConsumers } from '../../src/bus/consumers.js';
import { decode, encode, jobMsgId, LOG_HEADERS, type CancelMessage, type EventMessage } from '../../src/bus/messages.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { STREAMS, subjects } from '../../src/bus/subjects.js';
import { GridClient } from '../../src/client/client.js';
import type { JobDefinition } from '../../src/domain/job.js';
import { Worker, type WorkerOptions } from '../../src/executor/worker.js';
import { LOG_CHUNK_BYTES } from '../../src/executor/log-publisher.js';
import type { BeginTaskRequest, BeginTaskResponse, BeginTasksRequest, BeginTasksResponse } from '../../src/gen/grid/v1/executor.js';
import { ExecutorServiceService } from '../../src/gen/grid/v1/executor.js';
import { groupAlive } from '../../src/runners/host/group.js';
import { HostRunner } from '../../src/runners/host/index.js';
import { createLogger } from '../../src/util/log.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { readAll as readStream } from '../harness/streams.js';

const SECRET = 'sup3r-s3cret-value';

let servers: TestServers;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let grpcServer: Server;
let client: GridClient;
/** BeginTask answers by task key; anything not listed proceeds with the secret. */
const refuse = new Map<string, string>();
const beginCalls: BeginTaskRequest[] = [];
/** Sizes of the BeginTasks calls (several tasks asked about at once). */
const batchedBegins: number[] = [];
/** How long the stand-in takes to answer a single BeginTask. */
let beginDelayMs = 0;

/** A task as the stand-in controller records it (what the old job messages carried). */
interface JobMessage {
  execution_id: string;
  task_key: string;
  definition: JobDefinition;
  job_version: number;
  args: Record<string, string>;
  has_secrets: boolean;
  deadline_ms: number;
  timeout_ms: number;
  max_attempts: number;
  backoff_ms: number;
}

/** The stand-in's state of record, by `<execution>.<task key>`. */
const records = new Map<string, JobMessage>();

/** Claims the stand-in granted, by `<execution>.<task key>`: each is the next attempt. */
const claims = new Map<string, number>();

function answer(req: BeginTaskRequest): BeginTaskResponse {
  beginCalls.push(req);
  const why = refuse.get(req.taskKey);
  const rec = records.get(jobMsgId(req.executionId, req.taskKey));
  if (why !== undefined || !rec) return { proceed: false, reason: why ?? 'no such task', secrets: {}, lockToken: 0, task: undefined, later: false, attempt: 0 };
  const attempt = (claims.get(jobMsgId(req.executionId, req.taskKey)) ?? 0) + 1;
  claims.set(jobMsgId(req.executionId, req.taskKey), attempt);
  return {
    proceed: true,
    attempt,
    reason: '',
    secrets: rec.has_secrets ? { TOKEN: SECRET } : {},
    lockToken: 7,
    later: false,
    task: {
      job: rec.definition.name,
      jobVersion: rec.job_version,
      definitionJson: JSON.stringify(rec.definition),
      args: rec.args,
      deadlineMs: rec.deadline_ms,
      timeoutMs: rec.timeout_ms,
      maxAttempts: rec.max_attempts,
      backoffMs: rec.backoff_ms,
      files: [],
    },
  };
}

beforeAll(async () => {
  servers = await startServers();
  nc = await servers.connectNats('worker-test');
  await ensureStreams(nc);
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);

  const notHere = (_: unknown, cb: sendUnaryData<never>) => cb({ code: status.UNIMPLEMENTED, details: 'not in this test' });
  const impl: UntypedServiceImplementation = {
    register: notHere,
    heartbeat: notHere,
    deregister: notHere,
    beginTask: (call: ServerUnaryCall<BeginTaskRequest, BeginTaskResponse>, cb: sendUnaryData<BeginTaskResponse>) => {
      setTimeout(() => cb(null, answer(call.request)), beginDelayMs);
    },
    beginTasks: (call: ServerUnaryCall<BeginTasksRequest, BeginTasksResponse>, cb: sendUnaryData<BeginTasksResponse>) => {
      batchedBegins.push(call.request.tasks.length);
      const { executorId, executorSecret } = call.request;
      const { session } = call.request;
      cb(null, { results: call.request.tasks.map((t) => answer({ executorId, executorSecret, session, executionId: t.executionId, taskKey: t.taskKey, attempt: 0, retryOf: t.attempt })) });
    },
  };
  serviceImpl = impl;
  grpcServer = await serveController('127.0.0.1:0');
  client = new GridClient({ address: `127.0.0.1:${boundPort(grpcServer)}`, timeoutMs: 5000, tls: { plaintext: true } });
});

let serviceImpl: UntypedServiceImplementation;
const ports = new WeakMap<Server, number>();

/** A stand-in controller: the ExecutorService above (or `impl`), listening on `address`. */
async function serveController(address: string, impl: UntypedServiceImplementation = serviceImpl): Promise<Server> {
  const server = new Server();
  server.addService(ExecutorServiceService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  ports.set(server, port);
  return server;
}

function boundPort(server: Server): number {
  return ports.get(server)!;
}

afterAll(async () => {
  client?.close();
  grpcServer?.forceShutdown();
  await nc?.drain().catch(() => {});
  await servers?.stop();
});

// ---- one worker per test ----

interface Harness {
  worker: Worker;
  executorId: string;
  workDir: string;
  logLines: string[];
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startWorker(
  opts: Partial<WorkerOptions> & { groups?: string[]; beforeStart?: (workDir: string) => Promise<void> } = {},
): Promise<Harness> {
  const executorId = uniqueName('X').toUpperCase().replace(/-/g, '');
  const workDir = await mkdtemp(join(tmpdir(), 'grid-worker-'));
  const concurrency = opts.concurrency ?? 4;
  const names = await ensureExecutorConsumers(nc, { id: executorId, groups: opts.groups ?? [], runners: ['host'], concurrency });
  const logLines: string[] = [];
  await opts.beforeStart?.(workDir);
  const worker = new Worker({
    nc,
    client,
    executorId,
    executorSecret: 'executor-secret',
    executorName: `node-${executorId.toLowerCase()}`,
    jobConsumer: names.node,
    poolConsumers: names.pools,
    runners: [new HostRunner({ workRoot: workDir, killGraceMs: 500, batchMs: 10 })],
    concurrency,
    workDir,
    logMaxBytes: 1024 * 1024,
    log: createLogger({ level: 'debug', name: 'worker', write: (l) => logLines.push(l) }),
    pullExpiresMs: 1000,
    workingIntervalMs: 1000,
    unavailableDelayMs: 500,
    ...opts,
  });
  await worker.start();
  cleanups.push(async () => {
    await worker.drain(Date.now());
    await rm(workDir, { recursive: true, force: true });
  });
  return { worker, executorId, workDir, logLines };
}

function definition(def: Partial<JobDefinition>): JobDefinition {
  return {
    name: 'test-job',
    description: '',
    authorized_groups: [],
    env_vars: { secrets: [{ name: 'TOKEN', description: '' }], args: [] },
    runner: 'host',
    files: [],
    ...def,
  };
}

async function publishJob(executorId: string, job: Partial<JobMessage> & { definition: JobDefinition }): Promise<JobMessage> {
  return publishTo(subjects.nodeJob(executorId), { task_key: executorId, has_secrets: true, ...job });
}

/** A job message for the pool of `group` (host runner). */
async function publishPoolJob(group: string, job: Partial<JobMessage> & { task_key: string; definition: JobDefinition }): Promise<JobMessage> {
  return publishTo(subjects.poolJob(group, 'host'), { has_secrets: false, ...job });
}

async function publishTo(subject: string, job: Partial<JobMessage> & { task_key: string; definition: JobDefinition }): Promise<JobMessage> {
  const msg: JobMessage = {
    execution_id: uniqueName('E').toUpperCase().replace(/-/g, ''),
    job_version: 1,
    args: {},
    has_secrets: false,
    deadline_ms: 0,
    timeout_ms: 0,
    max_attempts: 1,
    backoff_ms: 0,
    ...job,
  };
  records.set(jobMsgId(msg.execution_id, msg.task_key), msg);
  await js.publish(subject, encode({ execution_id: msg.execution_id, task_key: msg.task_key }), { msgID: jobMsgId(msg.execution_id, msg.task_key) });
  return msg;
}

// ---- reading back ----

/** Every message on `filter` in `stream` so far. */
function readAll(stream: string, filter: string): Promise<JsMsg[]> {
  return readStream(js, stream, filter);
}

async function events(executionId: string): Promise<EventMessage[]> {
  return (await readAll(STREAMS.events, `grid.evt.${executionId}.>`)).map((m) => decode<EventMessage>(m.data));
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
}

function untilEvent(executionId: string, pred: (e: EventMessage) => boolean): Promise<EventMessage[]> {
  return eventually(`an event of ${executionId}`, async () => {
    const evs = await events(executionId);
    return evs.some(pred) ? evs : undefined;
  });
}

const finished = (e: EventMessage) => e.kind === 'finished';
/** The events in order; a finished event carrying its task's started event counts as the two. */
const brief = (evs: EventMessage[]) =>
  evs.flatMap((e) => [...(e.started ? [`started#${e.attempt}`] : []), `${e.kind}#${e.attempt}${e.outcome ? ':' + e.outcome : ''}`]);

async function jobsLeft(executorId: string): Promise<number> {
  const info = await jsm.streams.info(STREAMS.jobs, { subjects_filter: subjects.nodeJob(executorId) });
  return info.state.subjects?.[subjects.nodeJob(executorId)] ?? 0;
}

// ---- tests ----

describe('worker', () => {
  it('runs a host task: started and finished events, tagged logs with the secret masked, message acked', async () => {
    // The task ends long before its started event would go out on its own.
    const h = await startWorker({ startedDeferMs: 600_000 });
    const job = await publishJob(h.executorId, {
      definition: definition({
        shell: 'echo "hello $WHO"; echo "token is $TOKEN"; echo "lock $GRID_LOCK_TOKEN"; echo to-stderr >&2',
      }),
      args: { WHO: 'grid' },
    });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
    // A task that ends before its started event went out reports it in its finished event: one event, not two.
    expect(evs).toHaveLength(1);
    const fin = evs[0]!;
    expect(fin).toMatchObject({ task_key: h.executorId, executor_id: h.executorId, executor_name: `node-${h.executorId.toLowerCase()}`, exit_code: 0 });
    expect(fin.started!.at_ms).toBeLessThanOrEqual(fin.at_ms);

    const logs = await readAll(STREAMS.logs, subjects.log(job.execution_id, h.executorId));
    const text = (stream: string) =>
      logs.filter((m) => m.headers?.get(LOG_HEADERS.stream) === stream).map((m) => Buffer.from(m.data).toString('utf8')).join('');
    expect(text('stdout')).toBe('hello grid\ntoken is ****\nlock 7\n');
    expect(text('stderr')).toBe('to-stderr\n');
    for (const m of logs) {
      expect(m.headers?.get(LOG_HEADERS.task)).toBe(h.executorId);
      expect(m.headers?.get(LOG_HEADERS.executorName)).toBe(`node-${h.executorId.toLowerCase()}`);
      expect(m.headers?.get(LOG_HEADERS.attempt)).toBe('1');
      expect(Buffer.from(m.data).toString('utf8')).not.toContain(SECRET);
    }
    const call = beginCalls.find((c) => c.executionId === job.execution_id);
    expect(call).toMatchObject({ executorId: h.executorId, executorSecret: 'executor-secret', taskKey: h.executorId, session: expect.stringMatching(/^[0-9A-Z]{26}$/) });

    await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
    await eventually('the worker to be idle', async () => h.worker.runningTasks() === 0);
    expect(h.logLines.join('\n')).not.toContain(SECRET);
  });

  it('retries a failing task up to max_attempts, then reports it finished with the last attempt', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, {
      definition: definition({ shell: 'echo "attempt $GRID_ATTEMPT"; exit 3' }),
      max_attempts: 2,
      backoff_ms: 200,
    });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['started#1', 'retrying#1:failed', 'started#2', 'finished#2:failed']);
    expect(evs.find((e) => e.kind === 'retrying')).toMatchObject({ exit_code: 3, reason: 'exit code 3' });
    expect(evs.find(finished)).toMatchObject({ exit_code: 3, reason: 'exit code 3', attempt: 2 });
    const logs = await readAll(STREAMS.logs, subjects.log(job.execution_id, h.executorId));
    expect(logs.map((m) => `${m.headers?.get(LOG_HEADERS.attempt)}:${Buffer.from(m.data).toString('utf8')}`)).toEqual([
      '1:attempt 1\n',
      '2:attempt 2\n',
    ]);
    await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
  });

  it('drops a task the controller says not to run: no events, message acked', async () => {
    const h = await startWorker();
    const key = `${h.executorId}`;
    refuse.set(key, 'the execution was cancelled');
    try {
      const job = await publishJob(h.executorId, { definition: definition({ shell: 'echo should-not-run' }), task_key: key });
      await eventually('BeginTask to be asked', async () => beginCalls.some((c) => c.executionId === job.execution_id));
      await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
      await eventually('the worker to be idle', async () => h.worker.runningTasks() === 0);
      expect(await events(job.execution_id)).toEqual([]);
      expect(await readAll(STREAMS.logs, subjects.logsOf(job.execution_id))).toEqual([]);
      expect(h.logLines.some((l) => l.includes('not to run') && l.includes('the execution was cancelled'))).toBe(true);
    } finally {
      refuse.delete(key);
    }
  });

  it('fails a task whose runner this executor does not offer', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, { definition: definition({ runner: 'kubernetes', image_name: 'busybox' }) });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['finished#1:failed']);
    expect(evs[0]!.reason).toBe('this executor does not offer the "kubernetes" runner');
    await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
  });

  it('reports a task whose execution deadline has passed as timed out without running it', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, { definition: definition({ shell: 'echo should-not-run' }), deadline_ms: Date.now() - 1000 });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['finished#1:timed_out']);
    expect(await readAll(STREAMS.logs, subjects.logsOf(job.execution_id))).toEqual([]);
  });

  it('a copy of a task\'s message that comes while it runs (a stall past ack_wait) keeps the first run: it runs once, every copy acked', async () => {
    // No keep-alive within a short ack_wait: the server redelivers the message to this executor while the task runs.
    const h = await startWorker({ workingIntervalMs: 60_000 });
    const consumer = `${h.executorId}`;
    const names = (await jsm.consumers.list(STREAMS.jobs).next()).filter((c) => c.name.includes(consumer)).map((c) => c.name);
    for (const name of names) await jsm.consumers.update(STREAMS.jobs, name, { ack_wait: 1_500 * 1_000_000 });
    const marks = join(h.workDir, 'runs');
    const job = await publishJob(h.executorId, { definition: definition({ shell: `echo run >> ${marks}; sleep 5` }) });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
    expect(readFileSync(marks, 'utf8')).toBe('run\n');
    expect(h.logLines.join('\n')).toMatch(/offered again while it runs here: keeping the run/);
    for (const name of names) {
      const info = await eventually('every copy acked', async () => {
        const i = await jsm.consumers.info(STREAMS.jobs, name);
        return i.num_ack_pending === 0 && i.num_pending === 0 ? i : undefined;
      });
      expect(info.delivered.consumer_seq, 'deliveries of the one message').toBeGreaterThan(1);
    }
  });

  it('stops a running task on a cancel broadcast: finished cancelled; its pid file is there only while it runs', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, { definition: definition({ shell: 'echo begun; sleep 100' }) });
    await untilEvent(job.execution_id, (e) => e.kind === 'started');
    const pidFile = join(h.workDir, 'running', `${job.execution_id}.${job.task_key}.pid`);
    // The file is created, then written: wait for its number.
    await eventually('the pid file', async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8')) > 1);
    const pgid = Number(readFileSync(pidFile, 'utf8'));
    expect(pgid).toBeGreaterThan(1);

    const cancel: CancelMessage = { execution_id: job.execution_id, reason: 'cancelled' };
    nc.publish(subjects.cancel(h.executorId), encode(cancel));
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:cancelled']);
    expect(evs.find(finished)!.reason).toBe('cancelled');
    expect(existsSync(pidFile)).toBe(false);
    expect(await groupAlive(pgid)).toBe(false);
    await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
  });

  it('never runs more tasks at once than its concurrency', async () => {
    const h = await startWorker({ concurrency: 2 });
    const marks = join(h.workDir, 'marks');
    await mkdir(marks);
    // Each task registers itself, counts who is running, then waits for the release file (up to
    // 60 s: a first task that gave up before the second started, under a loaded machine, would
    // leave each run counting only itself).
    const shell = [
      `touch "${marks}/run.$GRID_EXECUTION_ID"`,
      `ls "${marks}" | grep -c '^run\\.' >> "${marks}/counts"`,
      `i=0; while [ ! -e "${marks}/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`,
      `rm "${marks}/run.$GRID_EXECUTION_ID"`,
    ].join('\n');
    const jobs: JobMessage[] = [];
    for (let i = 0; i < 5; i++) jobs.push(await publishJob(h.executorId, { definition: definition({ shell }) }));

    // Two run together; only then may they go on.
    await eventually('two tasks running together', async () => readdirSync(marks).filter((f) => f.startsWith('run.')).length >= 2);
    expect(h.worker.runningTasks()).toBeLessThanOrEqual(2);
    await writeFile(join(marks, 'release'), '');
    for (const j of jobs) {
      const evs = await untilEvent(j.execution_id, finished);
      expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
    }
    const counts = readFileSync(join(marks, 'counts'), 'utf8').trim().split('\n').map(Number);
    expect(counts).toHaveLength(5);
    expect(Math.max(...counts)).toBe(2);
  });

  it('sends the started event on its own once a task has run a while, and the finished event without it', async () => {
    const h = await startWorker({ startedDeferMs: 50 });
    const job = await publishJob(h.executorId, { definition: definition({ shell: 'sleep 0.5' }) });
    const evs = await untilEvent(job.execution_id, finished);
    expect(evs.map((e) => e.kind)).toEqual(['started', 'finished']);
    expect(evs[1]!.started).toBeUndefined();
    // The started event says when the task started, not when it was sent.
    expect(evs[1]!.at_ms - evs[0]!.at_ms).toBeGreaterThanOrEqual(400);
  });

  it('drain waits for a running task to finish', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, { definition: definition({ shell: 'sleep 1; echo done' }) });
    await untilEvent(job.execution_id, (e) => e.kind === 'started');
    expect(h.worker.runningTasks()).toBe(1);
    await h.worker.drain(Date.now() + 30_000);
    expect(h.worker.runningTasks()).toBe(0);
    const evs = await events(job.execution_id);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
    expect(await jobsLeft(h.executorId)).toBe(0);
  });

  it('an idle worker stops without waiting for its long pulls to expire', async () => {
    // Idle pulls wait 30 s by default (pull.ts: shorter ones kept nats-server busy at 10,000
    // executors); stopping waits for them only up to its own bound.
    const h = await startWorker({ pullExpiresMs: 60_000 });
    await delay(500); // its pulls are waiting on the server now
    const t0 = performance.now();
    await h.worker.drain(Date.now() + 30_000);
    expect(performance.now() - t0).toBeLessThan(20_000);
  }, 90_000);

  it('drain stops what is still running at the deadline and reports it cancelled', async () => {
    const h = await startWorker();
    const job = await publishJob(h.executorId, { definition: definition({ shell: 'sleep 100' }) });
    await untilEvent(job.execution_id, (e) => e.kind === 'started');
    await h.worker.drain(Date.now() + 200);
    const evs = await events(job.execution_id);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:cancelled']);
    expect(evs.find(finished)!.reason).toBe('the executor shut down before the task finished');
    expect(await jobsLeft(h.executorId)).toBe(0);
  });

  it('takes tasks from its pool consumers too', async () => {
    const group = uniqueName('g').replace(/-/g, '');
    const h = await startWorker({ groups: [group] });
    const job = await publishPoolJob(group, { task_key: `pool.${group}.0`, definition: definition({ command: ['echo', 'pooled'] }) });
    const evs = await untilEvent(job.execution_id, finished);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
    expect(evs.find(finished)).toMatchObject({ task_key: `pool.${group}.0`, executor_id: h.executorId });
    const logs = await readAll(STREAMS.logs, subjects.log(job.execution_id, h.executorId));
    expect(logs.map((m) => Buffer.from(m.data).toString('utf8')).join('')).toBe('pooled\n');
  });

  it('with one slot and several consumers, a task on one consumer is not held up by a long-poll on another', async () => {
    // Each loop long-polls for 15 s. If a loop held the only slot while polling its idle
    // consumer, the pooled task would wait for that poll to expire, past the 8 s allowed here.
    const group = uniqueName('g').replace(/-/g, '');
    await startWorker({ groups: [group], concurrency: 1, pullExpiresMs: 15_000 });
    await delay(300); // let every loop start its long-poll
    const job = await publishPoolJob(group, { task_key: `pool.${group}`, definition: definition({ command: ['echo', 'prompt'] }) });
    const evs = await eventually('the pooled task to finish', async () => {
      const e = await events(job.execution_id);
      return e.some(finished) ? e : undefined;
    }, 8_000);
    expect(brief(evs)).toEqual(['started#1', 'finished#1:succeeded']);
  }, 30_000);

  it('publishes a large output completely and in order, in chunks of at most LOG_CHUNK_BYTES', async () => {
    const h = await startWorker({ logMaxBytes: 0 });
    const job = await publishJob(h.executorId, { definition: definition({ command: ['seq', '1', '300000'] }) });
    await untilEvent(job.execution_id, finished);
    const logs = await readAll(STREAMS.logs, subjects.log(job.execution_id, h.executorId));
    let expected = '';
    for (let i = 1; i <= 300000; i++) expected += `${i}\n`;
    expect(logs.every((m) => m.data.length <= LOG_CHUNK_BYTES)).toBe(true);
    expect(logs.length).toBeGreaterThan(1);
    expect(Buffer.concat(logs.map((m) => m.data)).toString('utf8') === expected).toBe(true);
  });

  describe('a backlog of tasks', () => {
    /** Eight tasks published at once to a worker of concurrency 8 while BeginTask answers slowly. */
    async function runBacklog(h: Harness): Promise<void> {
      beginDelayMs = 300;
      try {
        const jobs: JobMessage[] = [];
        for (let i = 0; i < 8; i++) jobs.push(await publishJob(h.executorId, { definition: definition({ shell: 'echo ran' }) }));
        for (const j of jobs) expect(brief(await untilEvent(j.execution_id, finished))).toEqual(['started#1', 'finished#1:succeeded']);
        expect(beginCalls.filter((c) => jobs.some((j) => j.execution_id === c.executionId))).toHaveLength(8); // each asked once
      } finally {
        beginDelayMs = 0;
      }
    }

    it('is taken several messages per pull, and the tasks taken together are begun in one BeginTasks call', async () => {
      const h = await startWorker({ concurrency: 8 });
      const before = batchedBegins.length;
      await runBacklog(h);
      // The first task's BeginTask is slow: the tasks pulled meanwhile are asked about together.
      expect(Math.max(0, ...batchedBegins.slice(before))).toBeGreaterThan(1);
    });

    it('still runs against a controller that does not offer BeginTasks: asked task by task', async () => {
      const { beginTasks: _omitted, ...older } = serviceImpl;
      const server = await serveController('127.0.0.1:0', older);
      const oldClient = new GridClient({ address: `127.0.0.1:${boundPort(server)}`, timeoutMs: 5000, tls: { plaintext: true } });
      try {
        const h = await startWorker({ concurrency: 8, client: oldClient });
        const before = batchedBegins.length;
        await runBacklog(h);
        expect(batchedBegins.length).toBe(before);
      } finally {
        oldClient.close();
        server.forceShutdown();
      }
    });
  });

  it('leaves a task in JetStream while the controller is unreachable, and runs it once it is back', async () => {
    // A port nobody listens on (yet).
    const probe = await serveController('127.0.0.1:0');
    const port = boundPort(probe);
    probe.forceShutdown();
    const offline = new GridClient({ address: `127.0.0.1:${port}`, timeoutMs: 2000, tls: { plaintext: true } });
    let later: Server | undefined;
    try {
      const h = await startWorker({ client: offline, unavailableDelayMs: 300 });
      const job = await publishJob(h.executorId, { definition: definition({ shell: 'echo "ran as attempt $GRID_ATTEMPT"' }) });
      await eventually('the worker to find the controller unreachable', async () => h.logLines.some((l) => l.includes('controller unreachable')));
      expect(await events(job.execution_id)).toEqual([]);
      expect(await jobsLeft(h.executorId)).toBe(1);

      later = await serveController(`127.0.0.1:${port}`);
      const evs = await untilEvent(job.execution_id, finished);
      const fin = evs.find(finished)!;
      expect(fin.outcome).toBe('succeeded');
      expect(brief(evs)).toEqual([`started#${fin.attempt}`, `finished#${fin.attempt}:succeeded`]);
      await eventually('the message to be acked', async () => (await jobsLeft(h.executorId)) === 0);
    } finally {
      later?.forceShutdown();
      offline.close();
    }
  });

  it('kills a task group left running by an earlier run of the executor, and removes its pid file', async () => {
    let orphan: ReturnType<typeof spawn> | undefined;
    let pidFile = '';
    const h = await startWorker({
      beforeStart: async (workDir) => {
        const taskDir = join(workDir, 'E1-1-abcdef');
        await mkdir(taskDir);
        orphan = spawn('sleep', ['100'], { cwd: taskDir, detached: true, stdio: 'ignore' });
        await new Promise((r) => orphan!.once('spawn', r));
        await mkdir(join(workDir, 'running'), { recursive: true });
        pidFile = join(workDir, 'running', 'E1.task.pid');
        await writeFile(pidFile, `${orphan.pid}\n`);
      },
    });
    expect(orphan).toBeDefined();
    const o = orphan!;
    const exited = o.exitCode !== null || o.signalCode !== null ? Promise.resolve(o.signalCode) : new Promise((r) => o.once('exit', (_c, sig) => r(sig)));
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(pidFile)).toBe(false);
    expect(existsSync(join(h.workDir, 'E1-1-abcdef'))).toBe(false);
    expect(h.logLines.some((l) => l.includes('killed a task left running'))).toBe(true);
  });
});
