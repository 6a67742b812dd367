// nats.replicas against a NATS that cannot keep that many copies (a single server): a stream
// that does not exist yet cannot be made, which stops the start with the key to change; streams
// that exist keep their count and are otherwise brought up to date, each refusal reported for
// the controller to log. (On a cluster they are scaled: test/e2e/cluster.test.ts.)

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, ensureStreams, FILES_STREAM } from '../../src/bus/setup.js';
import { STREAMS } from '../../src/bus/subjects.js';
import { ConfigError } from '../../src/errors.js';
import { startServers, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let nc: NatsConnection;

beforeAll(async () => {
  servers = await startServers();
  nc = await servers.connectNats('stream-replicas-test');
});

afterAll(async () => {
  await nc?.close();
  await servers?.stop();
});

describe('nats.replicas on a single nats-server', () => {
  it('refuses to make streams it cannot place, naming nats.replicas; existing streams keep their count and the rest is updated', async () => {
    const err = await ensureStreams(nc, { ...DEFAULT_LIMITS, replicas: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(
      /^config nats\.replicas: NATS cannot keep 3 copies of stream GRID_REQUESTS \(.+\); it needs a JetStream cluster with at least 3 servers up: give nats\.servers every server of such a cluster, or lower nats\.replicas$/,
    );

    expect(await ensureStreams(nc)).toEqual([]);
    const changes = await ensureStreams(nc, { ...DEFAULT_LIMITS, replicas: 3, logMaxBytes: 2 * DEFAULT_LIMITS.logMaxBytes });
    const names = [STREAMS.requests, STREAMS.jobs, STREAMS.events, STREAMS.logs, FILES_STREAM];
    expect(changes).toEqual(names.map((stream) => ({ stream, from: 1, to: 3, refused: 'NATS is a single server, not a JetStream cluster' })));
    const jsm = await jetstreamManager(nc);
    for (const name of names) expect((await jsm.streams.info(name)).config.num_replicas, name).toBe(1);
    expect((await jsm.streams.info(STREAMS.logs)).config.max_bytes).toBe(2 * DEFAULT_LIMITS.logMaxBytes);
  });
});
