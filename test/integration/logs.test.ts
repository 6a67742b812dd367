// GetLogs (LogService) against real NATS and etcd: a follow stream delivers every chunk, even
// those still buffered for a busy reader when the execution becomes terminal.

import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../src/bus/connect.js';
import { LOG_HEADERS } from '../../src/bus/messages.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { subjects } from '../../src/bus/subjects.js';
import { LogService } from '../../src/controller/logs.js';
import type { Execution } from '../../src/domain/execution.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { headers } from '@nats-io/nats-core';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let nc: NatsConnection;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  nc = await connectBus({ servers: [servers.natsUrl], name: 'logs-test' });
  await ensureStreams(nc);
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: `/${uniqueName('logs')}/` });
});

afterAll(async () => {
  kv?.close();
  await nc?.drain();
  await servers?.stop();
});

describe('LogService follow', () => {
  it('ends only after the last chunk, even when a burst is buffered for a busy reader at the end', async () => {
    const store = new EtcdExecutionStore(kv);
    const js = jetstream(nc);
    const id = uniqueName('X').toUpperCase().replace(/-/g, '');
    const x: Execution = {
      id, job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state: 'RUNNING', reason: '',
      created_at_ms: 1, updated_at_ms: 1, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
      tasks: [{ key: 'EX1', executor_id: 'EX1', executor_name: 'ex-1', state: 'RUNNING', attempts: 1, started_at_ms: 1, finished_at_ms: 0, reason: '', wave: 0 }],
    };
    await store.create(x);
    const publish = (i: number) => {
      const h = headers();
      h.set(LOG_HEADERS.stream, 'stdout');
      h.set(LOG_HEADERS.executorName, 'ex-1');
      return js.publish(subjects.log(id, 'EX1'), new TextEncoder().encode(`line ${i}\n`), { headers: h });
    };
    // The reader is caught up after the first chunk; then a burst lands in its buffer, the
    // execution ends, and the reader is still busy: the stream must not end before the burst.
    const total = 201;
    await publish(0);
    const logs = new LogService({ js, store });
    const got: string[] = [];
    const who = { name: 'op', role: 'operator' as const, groups: [] };
    for await (const c of logs.stream(who, { executionId: id, follow: true, executor: '' }, new AbortController().signal)) {
      got.push(new TextDecoder().decode(c.data));
      if (got.length === 1) {
        for (let i = 1; i < total; i++) await publish(i);
        await store.update(id, (e) => ((e.state = 'SUCCEEDED'), (e.tasks[0]!.state = 'SUCCEEDED'), true));
        await delay(1_500); // busy: the follow check sees the execution terminal meanwhile
      }
    }
    expect(got).toHaveLength(total);
    expect(got[total - 1]).toBe(`line ${total - 1}\n`);
  }, 30_000);
});
