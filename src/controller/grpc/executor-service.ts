// The ExecutorService adapter: executors register, heartbeat and deregister here. Executors
// prove who they are in the request (registration token, then id + secret), not with a bearer token.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ExecutorServiceServer } from '../../gen/grid/v1/executor.js';
import type { ExecutionService } from '../executions.js';
import type { ExecutorRegistry } from '../executors.js';
import { executorStateToPb } from './convert.js';
import { unaryOpen, type HandlerContext } from './handlers.js';

export function executorService(ctx: HandlerContext, registry: ExecutorRegistry, executions: ExecutionService): ExecutorServiceServer & UntypedServiceImplementation {
  return {
    register: unaryOpen(ctx, 'Register', async (req) => {
      const out = await registry.register({
        registrationToken: req.registrationToken,
        name: req.name,
        groups: req.groups,
        labels: req.labels,
        runners: req.runners,
        concurrency: req.concurrency,
        pingIntervalSeconds: req.pingIntervalSeconds,
        version: req.version,
        replace: req.replace,
        executorId: req.executorId || undefined,
        executorSecret: req.executorSecret || undefined,
      });
      return {
        executorId: out.executorId,
        executorSecret: out.executorSecret,
        created: out.created,
        pingDeadlineSeconds: out.pingDeadlineSeconds,
        nats: {
          servers: out.natsServers,
          jobSubject: out.jobSubject,
          jobConsumer: out.jobConsumer,
          poolConsumers: out.poolConsumers,
          jobStream: 'GRID_JOBS',
          eventSubjectPrefix: 'grid.evt',
          logSubjectPrefix: 'grid.log',
        },
      };
    }),
    heartbeat: unaryOpen(ctx, 'Heartbeat', async (req) => {
      const res = await registry.heartbeat({
        executorId: req.executorId,
        executorSecret: req.executorSecret,
        version: req.version,
        runningTasks: req.runningTasks,
        load: req.load,
        draining: req.draining,
      });
      return { state: executorStateToPb(res.state), pingDeadlineSeconds: res.pingDeadlineSeconds, cancelledExecutions: [] };
    }),
    deregister: unaryOpen(ctx, 'Deregister', async (req) => {
      await registry.deregister(req.executorId, req.executorSecret);
      return {};
    }),
    beginTask: unaryOpen(ctx, 'BeginTask', async (req) => {
      const res = await executions.beginTask({
        executorId: req.executorId,
        secret: req.executorSecret,
        executionId: req.executionId,
        taskKey: req.taskKey,
      });
      return { proceed: res.proceed, reason: res.reason, secrets: res.secrets, lockToken: 0 };
    }),
    beginTasks: unaryOpen(ctx, 'BeginTasks', async (req) => {
      const res = await executions.beginTasks({
        executorId: req.executorId,
        secret: req.executorSecret,
        tasks: req.tasks.map((t) => ({ executionId: t.executionId, taskKey: t.taskKey })),
      });
      return { results: res.map((r) => ({ proceed: r.proceed, reason: r.reason, secrets: r.secrets, lockToken: 0 })) };
    }),
  };
}
