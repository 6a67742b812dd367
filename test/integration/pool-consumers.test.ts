// A pool consumer is shared by its members. nats-server refuses pulls past its max_waiting, and
// nats-server 2.9 walks every waiting pull at each new pull and expiry, so a pool of thousands
// each keeping a pull waiting kept it busy. Pool consumers take POOL_MAX_WAITING waiting pulls;
// a member refused one parks on the pool's nudge subject, and a job sent to the pool wakes one
// parked member. A consumer made with another max_waiting is made again without losing its jobs.

import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type Consumer, type ConsumerConfig, type JsMsg } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../src/bus/connect.js';
import { ensureExecutorConsumers, POOL_MAX_WAITING } from '../../src/bus/consumers.js';
import { decode, encode, type JobMessage } from '../../src/bus/messages.js';
import { NatsBus } from '../../src/bus/nats-bus.js';
import { executorInboxPrefix, executorPermissions } from '../../src/bus/permissions.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { consumers, STREAMS, subjects } from '../../src/bus/subjects.js';
import { Puller } from '../../src/executor/pull.js';
import { Slots } from '../../src/executor/slots.js';
import { createLogger } from '../../src/util/log.js';
import { eventually } from '../harness/eventually.js';
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

/** A pool consumer made here directly (as an earlier version made it, or with a test's limits). */
async function addPoolConsumer(prefix: string, extra: Partial<ConsumerConfig> = {}): Promise<{ group: string; name: string }> {
  const group = uniqueName(prefix);
  const name = consumers.pool(group, 'host');
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add(STREAMS.jobs, { durable_name: name, filter_subject: subjects.poolJob(group, 'host'), ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, ...extra });
  return { group, name };
}

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
    const { name } = await addPoolConsumer('old');
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(STREAMS.jobs, name)).config.max_waiting).toBe(512);
    const { refused, errors } = await waitingPulls(await jetstream(nc).consumers.get(STREAMS.jobs, name), members);
    expect(refused).toBeGreaterThan(0);
    expect(errors[0]).toMatch(/maxwaiting/i);
  }, 60_000);

  it(`a pool consumer takes ${POOL_MAX_WAITING} waiting pulls and refuses the ones past them`, async () => {
    const group = uniqueName('big');
    const made = await ensureExecutorConsumers(nc, { id: uniqueName('X').toUpperCase(), groups: [group], runners: ['host'], concurrency: 1 });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.consumers.info(STREAMS.jobs, made.pools[0]!)).config.max_waiting).toBe(POOL_MAX_WAITING);
    const { refused, errors } = await waitingPulls(await jetstream(nc).consumers.get(STREAMS.jobs, made.pools[0]!), POOL_MAX_WAITING + 20);
    expect(refused).toBe(20);
    expect(errors[0]).toMatch(/maxwaiting/i);
  }, 60_000);

  it.each([
    ['512, the default', undefined],
    ['16,384', 16_384],
  ])('a pool consumer made before with max_waiting %s is made again, and still delivers the job it held', async (_, maxWaiting) => {
    const { group, name } = await addPoolConsumer('upgrade', maxWaiting ? { max_waiting: maxWaiting } : {});
    const jsm = await jetstreamManager(nc);
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

  /** A member of the pool: its pull loop with `concurrency` slots; a task holds its slot until the test ends. */
  function member(name: string, conn: NatsConnection, concurrency: number) {
    const taken: JsMsg[] = [];
    const logs: string[] = [];
    const slots = new Slots(concurrency);
    const puller = new Puller({
      js: jetstream(conn),
      nc: conn,
      slots,
      log: createLogger({ level: 'debug', name, write: (line) => void logs.push(line) }),
      // Longer than the test: A's pull stays the one waiting (one that expired and was asked
      // again could be refused in its turn, and A would park too).
      expiresMs: 30_000,
      workingIntervalMs: 5_000,
      onMessage: (m) => void taken.push(m),
    });
    return {
      taken: () => taken.map((m) => decode<JobMessage>(m.data).execution_id),
      parked: () => logs.some((l) => l.includes('parked until it is nudged')),
      start: (consumer: string) => puller.start([consumer]),
      async stop() {
        for (const m of taken) m.ack();
        slots.close();
        await puller.stop();
      },
    };
  }

  /**
   * Member A's pull is the one the consumer takes (max_waiting 1); member B's is refused, so B
   * parks. The first job (sent without a nudge) goes to A, whose only slot it then holds: A no
   * longer pulls. The second job reaches B only if something wakes B: `send` sends it, with or
   * without the nudge.
   */
  async function parkedMember(send: (bus: NatsBus, group: string, job: JobMessage) => Promise<void>): Promise<{ a: string[]; b: string[] }> {
    const { group, name } = await addPoolConsumer('parked', { ack_wait: nanos(60_000), max_waiting: 1 });
    const jsm = await jetstreamManager(nc);
    const bus = new NatsBus(nc);
    const a = member('a', nc, 1);
    const b = member('b', nc, 1);
    try {
      a.start(name);
      await eventually('A waits on the pool', async () => (await jsm.consumers.info(STREAMS.jobs, name)).num_waiting === 1, { timeoutMs: 10_000 });
      b.start(name);
      await eventually('B parks', async () => b.parked(), { timeoutMs: 10_000 });
      // Without a nudge, so that B stays parked: A's waiting pull takes it.
      await jetstream(nc).publish(subjects.poolJob(group, 'host'), encode({ execution_id: 'first', task_key: 'k' }));
      await eventually('A takes the first job', async () => a.taken().length === 1, { timeoutMs: 10_000 });
      await send(bus, group, { execution_id: 'second', task_key: 'k' });
      await new Promise((r) => setTimeout(r, 3_000));
      return { a: a.taken(), b: b.taken() };
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  }

  it('a member refused a waiting pull parks, and a job sent to the pool wakes it at once', async () => {
    const { a, b } = await parkedMember((bus, group, job) => bus.sendJob({ pool: group, runner: 'host' }, job));
    expect(a).toEqual(['first']);
    expect(b).toEqual(['second']);
  }, 60_000);

  it('without the nudge the parked member does not hear of the job (what the nudge is for)', async () => {
    const { a, b } = await parkedMember(async (_bus, group, job) => {
      await jetstream(nc).publish(subjects.poolJob(group, 'host'), encode(job));
    });
    expect(a).toEqual(['first']);
    expect(b).toEqual([]);
  }, 60_000);

  it("an executor's NATS user hears its own pools' nudges and is refused another pool's", async () => {
    const id = uniqueName('E').toUpperCase();
    const own = consumers.pool(uniqueName('own'), 'host');
    const other = consumers.pool(uniqueName('other'), 'host');
    const user = await servers.authority.mintOwnUser('executor', executorPermissions({ id, consumers: [consumers.node(id), own], groups: [] }));
    const ec = await connectBus({ servers: servers.natsUrls, name: 'executor', user: { jwt: user.jwt, seed: user.seed }, inboxPrefix: executorInboxPrefix(id) });
    try {
      const heard: string[] = [];
      let refused: Error | undefined;
      ec.subscribe(subjects.poolNudge(own), { queue: 'parked', callback: (err, m) => void (err ? (refused = err) : heard.push(m.subject)) });
      ec.subscribe(subjects.poolNudge(other), { queue: 'parked', callback: (err, m) => void (err ? (refused = err) : heard.push(m.subject)) });
      await ec.flush();
      await eventually('the refusal of the other pool', async () => refused !== undefined, { timeoutMs: 10_000 });
      nc.publish(subjects.poolNudge(own));
      nc.publish(subjects.poolNudge(other));
      await eventually('the own nudge', async () => heard.length > 0, { timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 300));
      expect(heard).toEqual([subjects.poolNudge(own)]);
      expect(refused!.message).toMatch(/permission/i);
    } finally {
      await ec.close();
    }
  }, 30_000);
});
