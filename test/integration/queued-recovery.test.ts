// Records an older version left QUEUED are still dispatched: the sweeper re-publishes them on
// GRID_REQUESTS and the dispatcher resolves the target, records the task set and sends the job
// messages. A request an older version published itself carries the definition it accepted the
// execution with, which is planned with even when the job is gone from the store.
// Against real etcd and NATS.

import { jetstream, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureControllerConsumers } from '../../src/bus/consumers.js';
import { encode } from '../../src/bus/messages.js';
import { NatsBus } from '../../src/bus/nats-bus.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { STREAMS, subjects } from '../../src/bus/subjects.js';
import { Dispatcher } from '../../src/controller/dispatcher.js';
import { JobPublisher } from '../../src/controller/job-publisher.js';
import type { ExecutorRecord } from '../../src/domain/executor.js';
import type { JobDefinition } from '../../src/domain/job.js';
import { parseJobDefinition } from '../../src/domain/jobdef.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { EtcdExecutorStore } from '../../src/store/etcd-executors.js';
import { EtcdJobStore } from '../../src/store/etcd-jobs.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { eventually } from '../harness/eventually.js';
import { executionRecord } from '../harness/records.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let kv: Kv;
let nc: NatsConnection;
let js: JetStreamClient;
let store: EtcdExecutionStore;
let jobs: EtcdJobStore;
let dispatcher: Dispatcher;
const log = createLogger({ level: 'error', name: 'test', write: () => {} });

const executor: ExecutorRecord = {
  id: 'EXQ1', name: 'queued-node', groups: [], labels: {}, runners: ['host'], concurrency: 1, version: 't', state: 'ACTIVE',
  registered_at_ms: 1, last_seen_at_ms: 1, state_changed_at_ms: 1, ping_interval_seconds: 10, secret_hash: '', lease_id: '',
};

beforeAll(async () => {
  servers = await startServers();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('queued')}/` });
  nc = await servers.connectNats('queued-test');
  await ensureStreams(nc);
  await ensureControllerConsumers(nc);
  js = jetstream(nc);
  store = new EtcdExecutionStore(kv);
  jobs = new EtcdJobStore(kv);
  const executors = new EtcdExecutorStore(kv);
  await executors.create(executor);
  const bus = new NatsBus(nc);
  const publisher = new JobPublisher({ queue: bus, jobs });
  dispatcher = new Dispatcher({ bus, store, jobs, executors, publisher, log });
  await dispatcher.start();
});

afterAll(async () => {
  await dispatcher?.stop();
  await nc?.drain();
  kv?.close();
  await servers?.stop();
});

function definition(name: string): JobDefinition {
  return parseJobDefinition(JSON.stringify({ name, description: 'd', command: ['true'] }));
}

async function jobMessages(): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(STREAMS.jobs, { subjects_filter: subjects.nodeJob(executor.id) });
  return info.state.subjects?.[subjects.nodeJob(executor.id)] ?? 0;
}

describe('a record an older version left QUEUED', () => {
  it('is dispatched from a re-published request: task set recorded, job message sent', async () => {
    await jobs.createJob(definition('queued-job'), 'me');
    const id = 'XQUEUED1';
    await store.create(executionRecord(id, { job: 'queued-job', state: 'QUEUED', target: `node:${executor.name}` }));
    const before = await jobMessages();
    await js.publish(subjects.request(id), encode({ execution_id: id }), { msgID: id });
    await eventually('the record to be dispatched', async () => (await store.get(id))?.value.state === 'DISPATCHED');
    const x = (await store.get(id))!.value;
    expect(x.tasks.map((t) => [t.executor_id, t.state])).toEqual([[executor.id, 'PENDING']]);
    await eventually('its job message', async () => (await jobMessages()) === before + 1);
  });

  it('is planned with the definition an older version sent along, even once the job is deleted', async () => {
    const id = 'XQUEUED2';
    await store.create(executionRecord(id, { job: 'gone-job', state: 'QUEUED', target: `node:${executor.name}` }));
    const before = await jobMessages();
    await js.publish(subjects.request(id), encode({ execution_id: id, definition: definition('gone-job') }), { msgID: id });
    await eventually('the record to be dispatched', async () => (await store.get(id))?.value.state === 'DISPATCHED');
    await eventually('its job message', async () => (await jobMessages()) === before + 1);
  });

  it('fails when its job was deleted and the request carries no definition', async () => {
    const id = 'XQUEUED3';
    await store.create(executionRecord(id, { job: 'never-stored', state: 'QUEUED', target: `node:${executor.name}` }));
    await js.publish(subjects.request(id), encode({ execution_id: id }), { msgID: id });
    await eventually('the record to fail', async () => (await store.get(id))?.value.state === 'FAILED');
    expect((await store.get(id))!.value.reason).toMatch(/never-stored was deleted before dispatch/);
  });
});
