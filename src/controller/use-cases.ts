// The use-cases a front door serves, transport-free: every door (gRPC, HTTP, the NATS intake) is
// handed these and translates its own requests into calls on them, with the
// principal it authenticated. Views (views.ts) are what they answer with.

import type { EventService } from './events.js';
import type { ExecutionService } from './executions.js';
import type { ExecutorRegistry } from './executors.js';
import type { FileService } from './files.js';
import type { BackendHealth } from './health.js';
import type { JobService } from './jobs.js';
import type { LockService } from './locks.js';
import type { LogService } from './logs.js';
import type { NatsCredentialService } from './nats-credentials.js';

/** What people (operators, CI, dashboards) call. */
export interface ControllerUseCases {
  jobs: JobService;
  executors: ExecutorRegistry;
  executions: ExecutionService;
  logs: LogService;
  files: FileService;
  /** The feed of changes to executions and executors (HTTP's /v1/events). */
  events: EventService;
  /** Absent: a door answers that this controller does not report its health. */
  health?: BackendHealth;
  /** NATS users for the request intake; absent: a door answers that this controller issues none. */
  natsCredentials?: NatsCredentialService;
}

/** What executors call: register and heartbeat, claim tasks, read their files, hold locks. */
export interface ExecutorUseCases {
  registry: ExecutorRegistry;
  executions: ExecutionService;
  files: FileService;
  locks: LockService;
}
