// What a heartbeat carries and what an open heartbeat stream offers: the contract between the
// executor registry (executors.ts) and the doors that take heartbeats.

import type { ExecutorState } from '../domain/executor.js';
import { UnavailableError } from '../errors.js';

/** What an executor reports with each heartbeat. */
export interface HeartbeatStatus {
  version: string;
  runningTasks: number;
  load: number;
  draining: boolean;
}

export interface HeartbeatInput extends HeartbeatStatus {
  executorId: string;
  executorSecret: string;
}

/**
 * A heartbeat on an open stream that etcd did not take in time (its lease keep-alive or record
 * write): that heartbeat failed, but the stream is still good for the next one.
 */
export class HeartbeatNotRecordedError extends UnavailableError {}

/** An open heartbeat stream, bound to the executor it authenticated as. */
export interface HeartbeatStream {
  executorId: string;
  beat(status: HeartbeatStatus): Promise<{ state: ExecutorState; pingDeadlineSeconds: number }>;
  /** The stream ended: forget it. */
  close(): void;
}

/** An executor's last heartbeat, as the events feed hands it out. */
export interface ExecutorHeartbeat {
  id: string;
  last_seen_at_ms: number;
  running_tasks: number;
  load: number;
}
