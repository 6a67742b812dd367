// GRID_REQUESTS carries two kinds of request, each for its own shared durable: the dispatcher's
// (grid.req.<execution>) and the NATS intake's (grid.submit.execute). A stream and dispatcher made
// by a version without the intake (one subject, a dispatcher without a filter, which a work-queue
// stream would let no second consumer beside) are brought up to date by a controller's start,
// without losing a request the old dispatcher had not taken.

import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureControllerConsumers } from '../../src/bus/consumers.js';
import { ensureStreams } from '../../src/bus/setup.js';
import { consumers, STREAMS, subjects } from '../../src/bus/subjects.js';
import { startServers, type TestServers } from '../harness/servers.js';

let servers: TestServers;

beforeAll(async () => {
  servers = await startServers();
});

afterAll(async () => {
  await servers?.stop();
});

describe('the request stream and its durables', () => {
  it('gives an older unfiltered dispatcher its filter, adds the intake beside it, and routes each subject to its own', async () => {
    const nc = await servers.connectNats();
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: STREAMS.requests, subjects: ['grid.req.>'], retention: RetentionPolicy.Workqueue, storage: StorageType.File });
      await jsm.consumers.add(STREAMS.requests, { durable_name: consumers.dispatcher, ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      // A request the old dispatcher had not taken yet: the remade dispatcher still gets it.
      await js.publish(subjects.request('01JD3V0Q8W4Z5M2K7T9XG6B1RA'), '{}');

      await ensureStreams(nc);
      await ensureControllerConsumers(nc);
      await ensureControllerConsumers(nc); // idempotent, as every replica runs it

      expect((await jsm.streams.info(STREAMS.requests)).config.subjects).toEqual([subjects.requests, subjects.submissions]);
      expect((await jsm.consumers.info(STREAMS.requests, consumers.dispatcher)).config.filter_subject).toBe(subjects.requests);
      expect((await jsm.consumers.info(STREAMS.requests, consumers.intake)).config.filter_subject).toBe(subjects.submissions);

      await js.publish(subjects.submitExecute, '{}');
      const take = async (durable: string) => {
        const m = await (await js.consumers.get(STREAMS.requests, durable)).next({ expires: 2_000 });
        m?.ack();
        return m?.subject;
      };
      expect(await take(consumers.dispatcher)).toBe('grid.req.01JD3V0Q8W4Z5M2K7T9XG6B1RA');
      expect(await take(consumers.intake)).toBe(subjects.submitExecute);
      expect(await take(consumers.dispatcher)).toBeUndefined();
    } finally {
      await nc.close();
    }
  }, 60_000);
});
