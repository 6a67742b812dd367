// What an operator checks first when GRID misbehaves: is etcd answering and how big is its
// database, are the streams there and how many replicas they have, what retention keeps. Each
// backend is asked on its own, so one that is down is reported as such beside the other. The
// round-trip pings are what readiness (readiness.ts) probes with.

import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { BUCKETS, STREAMS } from '../bus/subjects.js';
import { etcdDbStatus, type EtcdDbStatus } from '../store/etcd-maintenance.js';
import type { ExecutionStore } from '../store/store.js';
import type { Kv } from '../store/kv.js';
import { authorize, type Principal } from './auth.js';
import { describePolicy, type Retention, type RetentionStatus } from './retention.js';

export interface StreamReport {
  name: string;
  messages: number;
  bytes: number;
  replicas: number;
  leader: string;
  followers: string[];
}

export interface HealthReport {
  etcd: { endpoints: string[]; status?: EtcdDbStatus; error: string };
  nats: { servers: string[]; streams: StreamReport[]; error: string };
  retention?: { policy: string; finishedKept: number; status: RetentionStatus };
}

/** The streams GRID keeps, and the one behind its files bucket. */
const REPORTED_STREAMS = [...Object.values(STREAMS), `OBJ_${BUCKETS.files}`];

export class BackendHealth {
  constructor(
    private readonly d: {
      kv: Kv;
      nc: NatsConnection;
      store: Pick<ExecutionStore, 'countFinished'>;
      retention?: Retention;
      etcdEndpoints: string[];
      natsServers: string[];
    },
  ) {}

  /** One read of etcd (a single key), timed: the round trip in seconds; throws when etcd does not answer. */
  async pingEtcd(): Promise<number> {
    const started = performance.now();
    await this.d.kv.revision();
    return (performance.now() - started) / 1000;
  }

  /** One ping to NATS (PING/PONG), timed: the round trip in seconds; throws while disconnected. */
  async pingNats(): Promise<number> {
    const started = performance.now();
    await this.d.nc.rtt();
    return (performance.now() - started) / 1000;
  }

  async report(p: Principal): Promise<HealthReport> {
    authorize(p, 'executors:read');
    const [etcd, nats, retention] = await Promise.all([this.etcd(), this.nats(), this.retention()]);
    return { etcd, nats, ...(retention ? { retention } : {}) };
  }

  private async etcd(): Promise<HealthReport['etcd']> {
    const endpoints = this.d.etcdEndpoints;
    try {
      return { endpoints, status: await etcdDbStatus(this.d.kv), error: '' };
    } catch (err) {
      return { endpoints, error: (err as Error).message };
    }
  }

  private async nats(): Promise<HealthReport['nats']> {
    const servers = this.d.natsServers;
    try {
      const jsm = await jetstreamManager(this.d.nc);
      const streams: StreamReport[] = [];
      for (const name of REPORTED_STREAMS) {
        const info = await jsm.streams.info(name).catch(() => undefined);
        if (!info) continue;
        streams.push({
          name,
          messages: info.state.messages,
          bytes: info.state.bytes,
          replicas: info.config.num_replicas,
          leader: info.cluster?.leader ?? '',
          followers: (info.cluster?.replicas ?? []).map((r) => `${r.name} (${r.current ? 'current' : 'lagging'})`),
        });
      }
      return { servers, streams, error: '' };
    } catch (err) {
      return { servers, streams: [], error: (err as Error).message };
    }
  }

  private async retention(): Promise<HealthReport['retention']> {
    const r = this.d.retention;
    if (!r) return undefined;
    try {
      const [status, finishedKept] = await Promise.all([r.status(), this.d.store.countFinished()]);
      return { policy: describePolicy(r.policy), finishedKept, status };
    } catch {
      return undefined; // etcd is down: said above
    }
  }
}
