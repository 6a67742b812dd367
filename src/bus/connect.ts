// Connecting to NATS with GRID's defaults: named connections, endless reconnect with backoff.

import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { UnavailableError } from '../errors.js';

export interface BusOptions {
  servers: string[];
  name: string;
  /** Give up the first connection after this long (later reconnects never give up). */
  connectTimeoutMs?: number;
}

export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  try {
    return await connect({
      servers: opts.servers,
      name: opts.name,
      timeout: opts.connectTimeoutMs ?? 10_000,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      pingInterval: 10_000,
      // Every JetStream publish is a request; capturing a stack trace for each costs more CPU
      // than the publish itself on a hot path, and our errors carry their own context.
      noAsyncTraces: true,
    });
  } catch (err) {
    throw new UnavailableError(`cannot reach NATS at ${opts.servers.join(', ')}: ${(err as Error).message}`, { cause: err });
  }
}
