// GetLogs (LogService) against real NATS and etcd: a follow stream delivers every chunk, even
// those still buffered for a busy reader when the execution becomes terminal. And the executor's
// end of it (LogPublisher): everything arrives, in order, in messages of bounded size, with output
// written while a publish is in flight gathered into few messages.

import { jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_HEADERS } from '../../src/bus/messages.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { STREAMS, subjects } from '../../src/bus/subjects.js';
import { NatsBus } from '../../src/bus/nats-bus.js';
import { LogService } from '../../src/controller/logs.js';
import { LOG_CHUNK_BYTES, LogPublisher } from '../../src/executor/log-publisher.js';
import type { Execution } from '../../src/domain/execution.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { headers } from '@nats-io/nats-core';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { readAll as readStream } from '../harness/streams.js';

let servers: TestServers;
let nc: NatsConnection;
let kv: Kv;

beforeAll(async () => {
  servers = await startServers();
  nc = await servers.connectNats('logs-test');
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
    const logs = new LogService({ logs: new NatsBus(nc), store });
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
    // Lines that arrived together may come as one chunk; none is missing, the last one included.
    expect(got.join('')).toBe(Array.from({ length: total }, (_, i) => `line ${i}\n`).join(''));
  }, 30_000);
});

describe('LogService replay', () => {
  it('joins small stored messages into fewer chunks, never across executors or streams, and ends', async () => {
    const store = new EtcdExecutionStore(kv);
    const js = jetstream(nc);
    const id = uniqueName('X').toUpperCase().replace(/-/g, '');
    const task = (n: number) => ({ key: `EX${n}`, executor_id: `EX${n}`, executor_name: `ex-${n}`, state: 'SUCCEEDED' as const, attempts: 1, started_at_ms: 1, finished_at_ms: 2, reason: '', wave: 0 });
    await store.create({
      id, job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state: 'SUCCEEDED', reason: '',
      created_at_ms: 1, updated_at_ms: 2, finished_at_ms: 2, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
      tasks: [task(1), task(2)],
    });
    // Runs of lines by executor and stream, as they were stored.
    const written: Array<{ executor: string; stream: string; text: string }> = [];
    const acks: Array<Promise<unknown>> = [];
    for (let i = 0; i < 600; i++) {
      const executor = i % 150 < 100 ? 'EX1' : 'EX2';
      const stream = i % 13 === 0 ? 'stderr' : 'stdout';
      const h = headers();
      h.set(LOG_HEADERS.stream, stream);
      h.set(LOG_HEADERS.executorName, executor === 'EX1' ? 'ex-1' : 'ex-2');
      const text = `${executor} ${stream} line ${i}\n`;
      acks.push(js.publish(subjects.log(id, executor), new TextEncoder().encode(text), { headers: h }));
      const last = written[written.length - 1];
      if (last && last.executor === executor && last.stream === stream) last.text += text;
      else written.push({ executor, stream, text });
    }
    await Promise.all(acks);
    const logs = new LogService({ logs: new NatsBus(nc), store });
    const who = { name: 'op', role: 'operator' as const, groups: [] };
    const got: Array<{ executor: string; stream: string; text: string }> = [];
    let chunks = 0;
    let lastSeq = 0;
    for await (const c of logs.stream(who, { executionId: id, follow: false, executor: '' }, new AbortController().signal)) {
      chunks++;
      expect(c.seq).toBeGreaterThan(lastSeq);
      lastSeq = c.seq;
      const text = new TextDecoder().decode(c.data);
      const last = got[got.length - 1];
      if (last && last.executor === c.executorId && last.stream === c.stream) last.text += text;
      else got.push({ executor: c.executorId, stream: c.stream, text });
    }
    expect(got).toEqual(written);
    expect(chunks).toBeLessThan(600);
  }, 30_000);
});

describe('LogPublisher', () => {
  const js = () => jetstream(nc);

  function publisher(o: { chunkBytes?: number; window?: number } = {}) {
    const subject = subjects.log(uniqueName('X').toUpperCase().replace(/-/g, ''), 'EX1');
    return { subject, pub: new LogPublisher({ js: js(), subject, taskKey: 'EX1', executorName: 'ex-1', attempt: 2, ...o }) };
  }

  const readAll = (subject: string): Promise<JsMsg[]> => readStream(js(), STREAMS.logs, subject);

  const text = (ms: JsMsg[]) => Buffer.concat(ms.map((m) => m.data)).toString('utf8');

  it('gathers output written while a publish is in flight into few messages, in order and complete', async () => {
    const { subject, pub } = publisher({ chunkBytes: 64 * 1024 });
    let expected = '';
    for (let i = 0; i < 20_000; i++) {
      const line = `line ${i}\n`;
      expected += line;
      pub.write('stdout', Buffer.from(line));
    }
    await pub.flush();
    const ms = await readAll(subject);
    expect(pub.failed).toBe(0);
    expect(text(ms) === expected).toBe(true);
    expect(ms.every((m) => m.data.length <= 64 * 1024)).toBe(true);
    // The first line goes at once; the rest waited for its ack, gathered into full messages.
    expect(ms.length).toBeLessThanOrEqual(1 + Math.ceil(Buffer.byteLength(expected) / (64 * 1024)));
    expect(ms[0]!.headers?.get(LOG_HEADERS.stream)).toBe('stdout');
    expect(ms[0]!.headers?.get(LOG_HEADERS.task)).toBe('EX1');
    expect(ms[0]!.headers?.get(LOG_HEADERS.executorName)).toBe('ex-1');
    expect(ms[0]!.headers?.get(LOG_HEADERS.attempt)).toBe('2');
    expect(pub.published).toBe(ms.length);
    expect(pub.publishedBytes).toBe(Buffer.byteLength(expected));
  });

  it('keeps each message to one stream and the streams in the order written', async () => {
    const { subject, pub } = publisher();
    const written: Array<[string, string]> = [];
    for (let i = 0; i < 300; i++) {
      const stream = i % 7 === 0 ? 'stderr' : 'stdout';
      written.push([stream, `${stream} ${i}\n`]);
      pub.write(stream, Buffer.from(`${stream} ${i}\n`));
    }
    await pub.flush();
    const ms = await readAll(subject);
    // Consecutive writes of one stream may share a message; a message never mixes streams.
    const runs: Array<[string, string]> = [];
    for (const [stream, line] of written) {
      const last = runs[runs.length - 1];
      if (last && last[0] === stream) last[1] += line;
      else runs.push([stream, line]);
    }
    const got: Array<[string, string]> = [];
    for (const m of ms) {
      const stream = m.headers!.get(LOG_HEADERS.stream);
      const last = got[got.length - 1];
      if (last && last[0] === stream) last[1] += Buffer.from(m.data).toString('utf8');
      else got.push([stream, Buffer.from(m.data).toString('utf8')]);
    }
    expect(got).toEqual(runs);
  });

  it('splits one large write into messages of at most the chunk size, the copy made before write() returns', async () => {
    const { subject, pub } = publisher();
    const big = Buffer.alloc(5 * LOG_CHUNK_BYTES + 12_345);
    for (let i = 0; i < big.length; i++) big[i] = 97 + (i % 26);
    const expected = big.toString('latin1');
    pub.write('stdout', big);
    // What had to wait was copied: the caller may reuse its buffer now.
    big.fill(0x21, 4 * LOG_CHUNK_BYTES);
    pub.write('stdout', Buffer.from('end\n'));
    await pub.flush();
    const ms = await readAll(subject);
    expect(ms.every((m) => m.data.length <= LOG_CHUNK_BYTES)).toBe(true);
    expect(Buffer.concat(ms.map((m) => m.data)).toString('latin1') === `${expected}end\n`).toBe(true);
  });
});
