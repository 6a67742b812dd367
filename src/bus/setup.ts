// Creates (or brings up to date) the streams and object store GRID needs, each kept by
// `replicas` servers of a JetStream cluster. Idempotent: every controller replica runs it on start.
// The durable consumers (consumers.ts) leave num_replicas unset, so they inherit the stream's.

import type { NatsConnection } from '@nats-io/nats-core';
import { nanos } from '@nats-io/nats-core';
import {
  DiscardPolicy,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { LIMIT_DEFAULTS } from '../domain/limits.js';
import { ConfigError } from '../errors.js';
import { BUCKETS, STREAMS, subjects } from './subjects.js';

export interface BusLimits {
  /** How long request messages stay deduplicated by execution id. */
  dedupWindowMs: number;
  eventRetentionMs: number;
  logRetentionMs: number;
  logMaxBytes: number;
  /** GRID_JOBS: the largest message, and what may wait in all (limits.job_message_bytes, …). */
  jobMessageBytes: number;
  jobsMaxBytes: number;
  jobsMaxMessages: number;
  /** How many servers keep a copy of each stream and of the files bucket (nats.replicas). */
  replicas: number;
}

export const DEFAULT_LIMITS: BusLimits = {
  dedupWindowMs: 10 * 60_000,
  eventRetentionMs: 7 * 24 * 3600_000,
  logRetentionMs: 3 * 24 * 3600_000,
  logMaxBytes: 1024 ** 3,
  jobMessageBytes: LIMIT_DEFAULTS.job_message_bytes,
  jobsMaxBytes: LIMIT_DEFAULTS.jobs_stream_bytes,
  jobsMaxMessages: LIMIT_DEFAULTS.jobs_stream_messages,
  replicas: 1,
};

/**
 * A stream that existed with another replica count: scaled `from` → `to`, or, when NATS refused
 * (`refused` says why), left at `from`. The caller logs it.
 */
export interface ReplicaChange {
  stream: string;
  from: number;
  to: number;
  refused?: string;
}

/** The stream behind the object store bucket `grid-files`. */
export const FILES_STREAM = `OBJ_${BUCKETS.files}`;

export function streamConfigs(l: BusLimits): Array<Partial<StreamConfig> & { name: string }> {
  return [
    {
      name: STREAMS.requests,
      subjects: [subjects.requests, subjects.submissions],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(l.dedupWindowMs),
    },
    {
      name: STREAMS.jobs,
      subjects: ['grid.job.>'],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(l.dedupWindowMs),
      // Bounded, and full means a send is refused (the sender retries it later): work already
      // waiting for an executor is never dropped to make room, as DiscardPolicy.Old would.
      max_msg_size: l.jobMessageBytes,
      max_bytes: l.jobsMaxBytes,
      max_msgs: l.jobsMaxMessages,
      discard: DiscardPolicy.New,
    },
    {
      name: STREAMS.events,
      subjects: ['grid.evt.>'],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(l.eventRetentionMs),
      duplicate_window: nanos(l.dedupWindowMs),
    },
    {
      name: STREAMS.logs,
      subjects: ['grid.log.>'],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(l.logRetentionMs),
      max_bytes: l.logMaxBytes,
      discard: DiscardPolicy.Old,
    },
  ];
}

export async function ensureStreams(nc: NatsConnection, limits: BusLimits = DEFAULT_LIMITS): Promise<ReplicaChange[]> {
  const jsm = await jetstreamManager(nc);
  const changes: ReplicaChange[] = [];
  for (const cfg of streamConfigs(limits)) {
    const { retention: _r, storage: _s, name, ...mutable } = cfg;
    const change = await ensureStream(jsm, name, { ...mutable, num_replicas: limits.replicas }, () => jsm.streams.add({ ...cfg, num_replicas: limits.replicas }));
    if (change) changes.push(change);
  }
  // The bucket is a stream too; Objm writes its config when it makes it, and it is scaled like the others.
  const files = await ensureStream(jsm, FILES_STREAM, { num_replicas: limits.replicas }, () =>
    new Objm(nc).create(BUCKETS.files, { storage: StorageType.File, replicas: limits.replicas }),
  );
  if (files) changes.push(files);
  return changes;
}

/**
 * Creates the stream with `create`, or updates what may change on a live one (retention and
 * storage may not). A different replica count is asked for in the same update; if NATS refuses
 * it (too few servers up, or not a cluster), the stream keeps its count and the rest is applied.
 */
async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  mutable: Partial<StreamConfig> & { num_replicas: number },
  create: () => Promise<unknown>,
): Promise<ReplicaChange | undefined> {
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
    try {
      await create();
    } catch (e) {
      throw cannotPlace(e, name, mutable.num_replicas);
    }
    return undefined;
  }
  const have = info.config.num_replicas;
  const want = mutable.num_replicas;
  if (have === want) {
    await jsm.streams.update(name, mutable);
    return undefined;
  }
  // A server outside a cluster (its streams have no cluster info) takes any count in an update,
  // and keeps one copy all the same.
  if (want > 1 && !info.cluster) {
    await jsm.streams.update(name, { ...mutable, num_replicas: have });
    return { stream: name, from: have, to: want, refused: 'NATS is a single server, not a JetStream cluster' };
  }
  try {
    await jsm.streams.update(name, mutable);
    return { stream: name, from: have, to: want };
  } catch (err) {
    if (!(err instanceof JetStreamApiError)) throw err;
    await jsm.streams.update(name, { ...mutable, num_replicas: have });
    return { stream: name, from: have, to: want, refused: err.message };
  }
}

/** A stream NATS would not create with `replicas` copies: what to set instead. */
function cannotPlace(err: unknown, name: string, replicas: number): unknown {
  if (!(err instanceof JetStreamApiError) || replicas === 1) return err;
  return new ConfigError(
    'nats.replicas',
    `NATS cannot keep ${replicas} copies of stream ${name} (${err.message}); it needs a JetStream cluster with at least ${replicas} servers up: give nats.servers every server of such a cluster, or lower nats.replicas`,
    { cause: err },
  );
}
