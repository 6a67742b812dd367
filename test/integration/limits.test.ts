// The limits of the controller config against a real controller process, etcd and NATS: each
// refusal reaches the caller as one line naming the limit's key and the value, with its gRPC
// code; open streams are counted per token and given back when they end; GRID_JOBS is bounded.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { jetstreamManager, DiscardPolicy, JetStreamApiError } from '@nats-io/jetstream';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { ensureStreams, DEFAULT_LIMITS } from '../../src/bus/setup.js';
import { STREAMS } from '../../src/bus/subjects.js';
import { LimitExceededError, ValidationError } from '../../src/errors.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import { startServers, type TestServers } from '../harness/servers.js';

const LIMITS = {
  arg_bytes: 1024,
  execution_args_bytes: 1536,
  definition_bytes: 2048,
  tasks_per_execution: 2,
  streams_per_token: 2,
  groups_per_executor: 2,
  job_message_bytes: 2048,
  jobs_stream_bytes: 4 * 1024 * 1024,
  jobs_stream_messages: 5000,
};

let servers: TestServers;
let controller: RunningController;
let admin: GridClient;
let operator: GridClient;
let nc: NatsConnection;
const executors: GridClient[] = [];

/** Registers an executor and makes it ACTIVE with one heartbeat; it runs nothing. */
async function activeExecutor(name: string): Promise<void> {
  const { client, res } = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name });
  executors.push(client);
  await client.call(client.executors, client.executors.heartbeat, {
    executorId: res.executorId, executorSecret: res.executorSecret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [],
  });
}

function execute(c: GridClient, o: { target: string; args?: Record<string, string> }) {
  return c.ctl.execute({ job: 'limited', args: o.args ?? {}, target: o.target, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
}

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: { limits: LIMITS } });
  admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
  operator = new GridClient({ address: controller.address, token: TOKENS.operator, timeoutMs: 10_000, tls: testClientTls() });
  nc = await servers.connectNats('limits-test');
  for (const name of ['lim-1', 'lim-2', 'lim-3']) await activeExecutor(name);
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({ name: 'limited', description: 'd', command: ['true'], env_vars: { args: [{ name: 'NOTE', description: 'd' }, { name: 'MORE', description: 'd' }] } }),
    replace: false, expectedVersion: 0,
  });
}, 60_000);

afterAll(async () => {
  admin?.close();
  operator?.close();
  for (const c of executors) c.close();
  await nc?.close();
  await cleanupProcesses();
  await servers?.stop();
});

describe('refusals', () => {
  it('a definition over limits.definition_bytes', async () => {
    const definitionJson = JSON.stringify({ name: 'too-big', description: 'd'.repeat(3000), command: ['true'] });
    const err = await admin.ctl.createJob({ definitionJson, replace: false, expectedVersion: 0 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe('definition: is 3 KiB; the limit is 2 KiB (limits.definition_bytes)');
  });

  it('an argument over limits.arg_bytes, and all of them over limits.execution_args_bytes', async () => {
    const one = await execute(operator, { target: 'node:lim-1', args: { NOTE: 'n'.repeat(1500) } }).catch((e: Error) => e);
    expect(one).toBeInstanceOf(ValidationError);
    expect((one as Error).message).toBe('args.NOTE: is 1.5 KiB; the limit is 1 KiB (limits.arg_bytes)');
    const all = await execute(operator, { target: 'node:lim-1', args: { NOTE: 'n'.repeat(1000), MORE: 'm'.repeat(1000) } }).catch((e: Error) => e);
    expect((all as Error).message).toBe('args: all together (names and values) is 2 KiB; the limit is 1.5 KiB (limits.execution_args_bytes)');
  });

  it('a target that makes more tasks than limits.tasks_per_execution, at Execute and in a dry run; nothing is recorded', async () => {
    const err = await execute(operator, { target: 'all' }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as Error).message).toBe('target all makes 3 tasks; the limit is 2 (limits.tasks_per_execution): narrow the target (group:G, node:NAME) or raise the limit');
    const dry = await operator.ctl.execute({ job: 'limited', args: {}, target: 'all', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: true }).catch((e: Error) => e);
    expect(dry).toBeInstanceOf(LimitExceededError);
    expect((await operator.ctl.listExecutions({ job: 'limited', limit: 100 })).executions).toEqual([]);
  });

  it('an executor with more groups than limits.groups_per_executor, at Register', async () => {
    const err = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'lim-groups', groups: ['a', 'b', 'c'] }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe('executor registration: groups: 3 groups; the limit is 2 (limits.groups_per_executor)');
  });
});

describe('streams per token', () => {
  it('the one past limits.streams_per_token is RESOURCE_EXHAUSTED; another token is not affected; ending one frees its slot', async () => {
    const { executionId } = await execute(operator, { target: 'node:lim-1' }); // nobody runs it: it stays open
    const opened: Array<{ it: AsyncIterator<unknown>; ac: AbortController }> = [];
    const open = async (kind: 'watch' | 'logs', c = operator) => {
      const ac = new AbortController();
      const stream = kind === 'watch' ? c.ctl.watchExecution(executionId, ac.signal) : c.ctl.getLogs({ executionId, follow: true }, ac.signal);
      const it = (stream as AsyncIterable<unknown>)[Symbol.asyncIterator]();
      return { it, ac, first: kind === 'watch' ? await it.next() : undefined };
    };
    // A watch (its first snapshot arrives) and a followed log count alike.
    const w = await open('watch');
    expect(w.first).toMatchObject({ done: false });
    opened.push(w);
    const l = await open('logs');
    opened.push(l);
    // The log stream has sent nothing yet: ask for its first message in the background.
    const lNext = l.it.next().catch((e: Error) => e);

    const refused = await open('watch').then(() => undefined, (e: Error) => e);
    expect(refused).toBeInstanceOf(LimitExceededError);
    expect(refused!.message).toBe('"operator" has 2 GetLogs and WatchExecution streams open; the limit is 2 (limits.streams_per_token); end one (a grid-cli getlogs, execute --wait or --follow still running) or raise the limit');

    const other = await open('watch', admin);
    expect(other.first).toMatchObject({ done: false });
    other.ac.abort();

    // The caller goes away from the watch: the controller gives its slot back.
    w.ac.abort();
    let again: Awaited<ReturnType<typeof open>> | undefined;
    for (let i = 0; i < 50 && !again; i++) {
      again = await open('watch').catch(() => undefined);
      if (!again) await new Promise((r) => setTimeout(r, 100));
    }
    expect(again?.first).toMatchObject({ done: false });
    again!.ac.abort();
    l.ac.abort();
    await lNext;
  }, 30_000);
});

describe('GRID_JOBS', () => {
  it('is created with the configured limits and refuses a message over limits.job_message_bytes; a replica with other limits updates the live stream', async () => {
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info(STREAMS.jobs);
    expect(config).toMatchObject({ max_msg_size: 2048, max_bytes: 4 * 1024 * 1024, max_msgs: 5000, discard: DiscardPolicy.New });
    const err = await jetstream(nc).publish('grid.job.node.nobody', new Uint8Array(4096)).catch((e: Error) => e);
    expect(err).toBeInstanceOf(JetStreamApiError);
    expect((err as Error).message).toMatch(/message size exceeds maximum allowed/);

    // Another replica (or a restart) with other limits updates the live stream.
    await ensureStreams(nc, { ...DEFAULT_LIMITS, jobMessageBytes: 4096 });
    expect((await jsm.streams.info(STREAMS.jobs)).config.max_msg_size).toBe(4096);
  });
});
