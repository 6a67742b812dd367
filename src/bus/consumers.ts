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
/**
 * The most pulls that wait on a pool consumer at once. nats-server 2.9 walks a consumer's whole
 * list of waiting pulls at each new pull and each expiry, so n members each keeping a pull
 * waiting cost it about n² / 30 s of walking: measured, 5,000 idle members kept a core busy and
 * 10,000 starting at once could not all start within 11 minutes. Past this many, a member's pull
 * is refused ("exceeded maxwaiting") and it parks until a job is sent to the pool (see Puller):
 * 9,900 members then cost nats-server under 3 % of a core. nats-server cannot change this on a
 * live consumer, so a pool consumer made with another value is made again (upsert).
 */
export const POOL_MAX_WAITING = 256;

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
  await upsert(jsm, node, subjects.nodeJob(e.id), { maxAckPending: Math.max(1, e.concurrency) });
  const pools: string[] = [];
  for (const group of e.groups) {
    for (const runner of e.runners) {
      const name = consumers.pool(group, runner);
      await upsert(jsm, name, subjects.poolJob(group, runner), { maxAckPending: POOL_MAX_ACK_PENDING, maxWaiting: POOL_MAX_WAITING });
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
  o: { maxAckPending: number; maxWaiting?: number },
): Promise<void> {
  const cfg = {
    durable_name: name,
    filter_subject: filter,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(JOB_ACK_WAIT_MS),
    max_ack_pending: o.maxAckPending,
    max_deliver: -1,
    ...(o.maxWaiting ? { max_waiting: o.maxWaiting } : {}),
  };
  let current: ConsumerInfo;
  try {
    current = await jsm.consumers.info(STREAMS.jobs, name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) {
      await jsm.consumers.add(STREAMS.jobs, cfg);
      return;
    }
    throw err;
  }
  if (o.maxWaiting && (current.config.max_waiting ?? 0) !== o.maxWaiting) {
    // Made by an earlier version (max_waiting 512, then 16,384), which nats-server cannot change: made again.
    // The jobs it had not acked stay in the work-queue stream and are delivered by the new one;
    // a copy delivered twice is refused by the claim (BeginTasks), so no task runs twice.
    await jsm.consumers.delete(STREAMS.jobs, name).catch((err: unknown) => {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) throw err;
    });
    await jsm.consumers.add(STREAMS.jobs, cfg);
    return;
  }
  await jsm.consumers.update(STREAMS.jobs, name, { max_ack_pending: o.maxAckPending, ack_wait: cfg.ack_wait });
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
