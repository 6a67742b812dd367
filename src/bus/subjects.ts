// Stream, subject and consumer names: the one place they are spelt (see DESIGN.md).

export const STREAMS = {
  requests: 'GRID_REQUESTS',
  jobs: 'GRID_JOBS',
  events: 'GRID_EVENTS',
  logs: 'GRID_LOGS',
} as const;

export const BUCKETS = { files: 'grid-files' } as const;

export const subjects = {
  request: (executionId: string) => `grid.req.${executionId}`,
  /** Every dispatch request (GRID_REQUESTS): what the dispatcher's durable takes. */
  requests: 'grid.req.>',
  /**
   * GRID_REQUESTS too: an execution request of an authorized NATS client, for the intake's
   * durable. Only users whose JWT allows it may publish here (see permissions.ts).
   */
  submitExecute: 'grid.submit.execute',
  /** Every intake request: what the intake's durable takes. */
  submissions: 'grid.submit.>',
  nodeJob: (executorId: string) => `grid.job.node.${executorId}`,
  poolJob: (group: string, runner: string) => `grid.job.pool.${group}.${runner}`,
  event: (executionId: string, executorId: string) => `grid.evt.${executionId}.${executorId}`,
  log: (executionId: string, executorId: string) => `grid.log.${executionId}.${executorId}`,
  logsOf: (executionId: string) => `grid.log.${executionId}.>`,
  /**
   * Core NATS (not JetStream): a fan-out's job pointer, once for every executor of a group (see
   * FanoutMessage). Executors may hear those of their own groups; none may publish here.
   */
  fanout: (group: string) => `grid.fan.${group}`,
  /**
   * Core NATS (not JetStream): "a job was sent to this pool consumer", to one of the members
   * parked on it (a queue group; see Puller). Members hear those of their own pools; none may publish.
   */
  poolNudge: (consumer: string) => `grid.nudge.${consumer}`,
  /** Core NATS (not JetStream): cancellations for one executor (it may hear only its own). */
  cancel: (executorId: string) => `grid.cancel.${executorId}`,
};

export const consumers = {
  dispatcher: 'dispatcher',
  intake: 'intake',
  recorder: 'recorder',
  node: (executorId: string) => `node-${executorId}`,
  pool: (group: string, runner: string) => `pool-${group}-${runner}`,
  /** Whether a consumer name is a pool's (shared by its members), not an executor's own. */
  isPool: (name: string) => name.startsWith('pool-'),
};
