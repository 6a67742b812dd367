// Creates (or brings up to date) the streams and object store GRID needs.
// Idempotent: every controller replica runs it on start.

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
} from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { LIMIT_DEFAULTS } from '../domain/limits.js';
import { BUCKETS, STREAMS } from './subjects.js';

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
}

export const DEFAULT_LIMITS: BusLimits = {
  dedupWindowMs: 10 * 60_000,
  eventRetentionMs: 7 * 24 * 3600_000,
  logRetentionMs: 3 * 24 * 3600_000,
  logMaxBytes: 1024 ** 3,
  jobMessageBytes: LIMIT_DEFAULTS.job_message_bytes,
  jobsMaxBytes: LIMIT_DEFAULTS.jobs_stream_bytes,
  jobsMaxMessages: LIMIT_DEFAULTS.jobs_stream_messages,
};

export function streamConfigs(l: BusLimits): Array<Partial<StreamConfig> & { name: string }> {
  return [
    {
      name: STREAMS.requests,
      subjects: ['grid.req.>'],
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

export async function ensureStreams(nc: NatsConnection, limits: BusLimits = DEFAULT_LIMITS): Promise<void> {
  const jsm = await jetstreamManager(nc);
  for (const cfg of streamConfigs(limits)) await ensureStream(jsm, cfg);
  await new Objm(nc).create(BUCKETS.files, { storage: StorageType.File });
}

async function ensureStream(jsm: JetStreamManager, cfg: Partial<StreamConfig> & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    // Retention and storage cannot change on a live stream; update only what may change.
    const { retention: _r, storage: _s, name: _n, ...mutable } = cfg;
    await jsm.streams.update(cfg.name, mutable);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      await jsm.streams.add(cfg);
      return;
    }
    throw err;
  }
}
