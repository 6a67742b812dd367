// The durable consumers an executor pulls its work from, created by the controller at
// registration so that executors need no stream-admin rights.

import { AckPolicy, DeliverPolicy, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type ConsumerInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import { consumers, STREAMS, subjects } from './subjects.js';

/** How long a job message may go without an ack or a working() before it is redelivered. */
export const JOB_ACK_WAIT_MS = 15_000;
/**
 * A pool consumer is shared by every member of the pool, so its max_ack_pending bounds the
 * pool as a whole; each executor bounds itself by pulling only when it has a free slot.
 */
const POOL_MAX_ACK_PENDING = 100_000;

export interface ExecutorConsumers {
  node: string;
  pools: string[];
}

export async function ensureExecutorConsumers(
  nc: NatsConnection,
  e: { id: string; groups: string[]; runners: string[]; concurrency: number },
): Promise<ExecutorConsumers> {
  const jsm = await jetstreamManager(nc);
  const node = consumers.node(e.id);
  await upsert(jsm, node, subjects.nodeJob(e.id), Math.max(1, e.concurrency));
  const pools: string[] = [];
  for (const group of e.groups) {
    for (const runner of e.runners) {
      const name = consumers.pool(group, runner);
      await upsert(jsm, name, subjects.poolJob(group, runner), POOL_MAX_ACK_PENDING);
      pools.push(name);
    }
  }
  return { node, pools };
}

export async function deleteExecutorConsumer(nc: NatsConnection, executorId: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.consumers.delete(STREAMS.jobs, consumers.node(executorId));
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
  }
}

async function upsert(
  jsm: Awaited<ReturnType<typeof jetstreamManager>>,
  name: string,
  filter: string,
  maxAckPending: number,
): Promise<void> {
  const cfg = {
    durable_name: name,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(JOB_ACK_WAIT_MS),
    max_ack_pending: maxAckPending,
    max_deliver: -1,
  };
  try {
    await jsm.consumers.info(STREAMS.jobs, name);
    await jsm.consumers.update(STREAMS.jobs, name, { max_ack_pending: maxAckPending, ack_wait: cfg.ack_wait });
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
      await jsm.consumers.add(STREAMS.jobs, cfg);
      return;
    }
    throw err;
  }
}

/**
 * How long a request or event taken by a controller that then died waits before another replica
 * gets it. Handling one takes milliseconds, so this only bounds recovery after a crash.
 */
export const CONTROLLER_ACK_WAIT_MS = 10_000;

/**
 * The controller's shared durables: `dispatcher` and `intake` on GRID_REQUESTS, each on its own
 * subjects (a work-queue stream takes no two consumers that overlap), `recorder` on events.
 */
export async function ensureControllerConsumers(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const [stream, name, filter] of [
    [STREAMS.requests, consumers.dispatcher, subjects.requests],
    [STREAMS.requests, consumers.intake, subjects.submissions],
    [STREAMS.events, consumers.recorder, undefined],
  ] as const) {
    const cfg = {
      durable_name: name,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(CONTROLLER_ACK_WAIT_MS),
      max_ack_pending: 20_000,
      max_deliver: -1,
      ...(filter ? { filter_subject: filter } : {}),
    };
    let current: ConsumerInfo | undefined;
    try {
      current = await jsm.consumers.info(stream, name);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    }
    if (current && (current.config.filter_subject ?? '') !== (filter ?? '')) {
      // A dispatcher made before the intake existed has no filter. nats-server 2.9 takes a new
      // filter in an update but then delivers nothing, so it is made again: the requests it had
      // not acked stay in the work-queue stream and are delivered to the new one.
      await jsm.consumers.delete(stream, name);
      current = undefined;
    }
    if (current) await jsm.consumers.update(stream, name, { ack_wait: cfg.ack_wait, max_ack_pending: cfg.max_ack_pending });
    else await jsm.consumers.add(stream, cfg);
  }
}
