// Every member of a pool keeps a pull waiting on the pool's consumer. nats-server refuses pulls
// past a consumer's max_waiting (512 unless set), so in a pool of more executors than that the
// rest could not wait for work: each failed its pull and retried it every 2 s. Pool consumers
// are now made with room for POOL_MAX_WAITING, and one made before is made again, without losing
// the jobs it had not delivered.

import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type Consumer } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureExecutorConsumers, POOL_MAX_WAITING } from '../../src/bus/consumers.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { consumers, STREAMS, subjects } from '../../src/bus/subjects.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let nc: NatsConnection;

beforeAll(async () => {
  servers = await startServers();
  nc = await servers.connectNats('pool-consumers-test');
  await ensureStreams(nc);
});

afterAll(async () => {
  await nc?.close().catch(() => {});
  await servers?.stop();
});

/** `n` pulls waiting on the consumer at once, as n pool members do; how many the server refused. */
async function waitingPulls(consumer: Consumer, n: number): Promise<{ refused: number; errors: string[] }> {
  const errors: string[] = [];
  const pulls = await Promise.all(Array.from({ length: n }, () => consumer.fetch({ max_messages: 1, expires: 3_000 })));
  await Promise.all(
    pulls.map(async (iter) => {
      try {
        for await (const m of iter) m.nak();
      } catch (err) {
        errors.push((err as Error).message);
      }
    }),
  );
  return { refused: errors.length, errors };
}

describe('pool consumers', () => {
  const members = 600; // more than nats-server's default max_waiting of 512

  it('a consumer made as before (default max_waiting) refuses the pulls of a pool past 512 members', async () => {
    const jsm = await jetstreamManager(nc);
    const name = consumers.pool(uniqueName('old'), 'host');
    await jsm.consumers.add(STREAMS.jobs, { durable_name: name, filter_subject: subjects.poolJob(name, 'x'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    expect((await jsm.consumers.info(STREAMS.jobs, name)).config.max_waiting).toBe(512);
    const { refused, errors } = await waitingPulls(await jetstream(nc).consumers.get(STREAMS.jobs, name), members);
    expect(refused).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/maxwaiting/i);
  }, 60_000);

  it(`every member of a ${members}-executor pool keeps a pull waiting on the pool's consumer`, async () => {
    const group = uniqueName('big');
    const made = await ensureExecutorConsumers(nc, { id: uniqueName('X').toUpperCase(), groups: [group], runners: ['host'], concurrency: 1 });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(STREAMS.jobs, made.pools[0]!)).config.max_waiting).toBe(POOL_MAX_WAITING);
    const { refused } = await waitingPulls(await jetstream(nc).consumers.get(STREAMS.jobs, made.pools[0]!), members);
    expect(refused).toBe(0);
  }, 60_000);

  it('a pool consumer made before is made again with room for the pool, and still delivers the job it held', async () => {
    const group = uniqueName('upgrade');
    const name = consumers.pool(group, 'host');
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(STREAMS.jobs, { durable_name: name, filter_subject: subjects.poolJob(group, 'host'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    const js = jetstream(nc);
    await js.publish(subjects.poolJob(group, 'host'), 'job waiting in the pool');

    await ensureExecutorConsumers(nc, { id: uniqueName('X').toUpperCase(), groups: [group], runners: ['host'], concurrency: 1 });
    await ensureExecutorConsumers(nc, { id: uniqueName('X').toUpperCase(), groups: [group], runners: ['host'], concurrency: 1 }); // the next member: left as it is

    const info = await jsm.consumers.info(STREAMS.jobs, name);
    expect(info.config.max_waiting).toBe(POOL_MAX_WAITING);
    const m = await (await js.consumers.get(STREAMS.jobs, name)).next({ expires: 2_000 });
    expect(m?.string()).toBe('job waiting in the pool');
    m?.ack();
  }, 60_000);
});
