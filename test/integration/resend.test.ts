// A controller records an execution with its task set, then sends the job messages itself. If
// it dies in between, the tasks would wait forever: every replica's sweeper sends them again
// once the process that released them (Execution.dispatcher) no longer holds its liveness key.
// Against real etcd and NATS.

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsBus } from '../../src/bus/nats-bus.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { STREAMS, subjects } from '../../src/bus/subjects.js';
import { ControllerInstances } from '../../src/controller/instances.js';
import type { ExecutionService } from '../../src/controller/executions.js';
import { JobPublisher } from '../../src/controller/job-publisher.js';
import { Sweeper } from '../../src/controller/sweeper.js';
import type { Execution } from '../../src/domain/execution.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { EtcdJobStore } from '../../src/store/etcd-jobs.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;
let nc: NatsConnection;
let store: EtcdExecutionStore;
let sweeper: Sweeper;
const log = createLogger({ level: 'error', name: 'test', write: () => {} });

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('resend')}/` });
  nc = await servers.connectNats('resend-test');
  await ensureStreams(nc);
  store = new EtcdExecutionStore(kv);
  const publisher = new JobPublisher({ queue: new NatsBus(nc), jobs: new EtcdJobStore(kv) });
  // The sweeper's own ExecutionService calls (retry of this process's failed sends) are not under test here.
  const executions = { retryUnsent: async () => {} } as unknown as ExecutionService;
  sweeper = new Sweeper({ store, executions, publisher, instances: new ControllerInstances(kv, log), log });
});

afterAll(async () => {
  await nc?.close();
  kv?.close();
  await servers?.stop();
});

/** A dispatched execution with one released fan-out task for `executorId`, not started. */
function dispatched(id: string, executorId: string, dispatcher: string): Execution {
  const now = Date.now();
  return {
    id, job: 'j', job_version: 1, args: {}, secret_names: [], target: `node:${executorId}`, requester: 'me', state: 'DISPATCHED', reason: '',
    created_at_ms: now, updated_at_ms: now, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    dispatcher,
    definition: { name: 'j', description: 'd', command: ['true'], runner: 'host' } as Execution['definition'],
    tasks: [{ key: executorId, executor_id: executorId, executor_name: executorId, state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0, released_at_ms: now }],
  };
}

async function jobMessagesFor(executorId: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAMS.jobs, { subjects_filter: subjects.nodeJob(executorId) });
  return info.state.subjects?.[subjects.nodeJob(executorId)] ?? 0;
}

describe('job messages of a controller that died before sending them', () => {
  it('are sent by the sweeper when the releasing process is gone, once', async () => {
    const gone = new ControllerInstances(kv, log);
    await gone.start();
    await store.create(dispatched('X-GONE', 'exec-a', gone.id));
    await sweeper.sweep();
    expect(await jobMessagesFor('exec-a')).toBe(0); // its process is alive: it sends them itself

    await gone.stop(); // the process is gone (its liveness key with it)
    await sweeper.sweep();
    expect(await jobMessagesFor('exec-a')).toBe(1);
    await sweeper.sweep(); // again: not sent twice
    expect(await jobMessagesFor('exec-a')).toBe(1);
  });

  it('are not sent again while the releasing process is alive, however old', async () => {
    const alive = new ControllerInstances(kv, log);
    await alive.start();
    const x = dispatched('X-ALIVE', 'exec-b', alive.id);
    x.tasks[0]!.released_at_ms = x.created_at_ms = Date.now() - 60_000;
    await store.create(x);
    await sweeper.sweep();
    expect(await jobMessagesFor('exec-b')).toBe(0);
    await alive.stop();
  });
});
