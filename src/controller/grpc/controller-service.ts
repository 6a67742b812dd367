// The ControllerService adapter: proto in, use-case call, proto out. Nothing else lives here.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ControllerServiceServer } from '../../gen/grid/v1/controller.js';
import { NotImplementedError } from '../../errors.js';
import type { ExecutionService } from '../executions.js';
import type { ExecutorRegistry } from '../executors.js';
import type { LogService } from '../logs.js';
import type { JobService } from '../jobs.js';
import { executionStateFromPb, executionToPb, executorToPb, jobInfoToPb } from './convert.js';
import { clientStream, serverStream, unary, type HandlerContext } from './handlers.js';

export interface ControllerUseCases {
  jobs: JobService;
  executors: ExecutorRegistry;
  executions: ExecutionService;
  logs: LogService;
}

export function controllerService(ctx: HandlerContext, uc: ControllerUseCases): ControllerServiceServer & UntypedServiceImplementation {
  const later = (what: string) => async (): Promise<never> => {
    throw new NotImplementedError(`${what} is not available in this version of the controller`);
  };
  // eslint-disable-next-line require-yield
  const laterStream = (what: string) => async function* (): AsyncIterable<never> {
    throw new NotImplementedError(`${what} is not available in this version of the controller`);
  };
  return {
    createJob: unary(ctx, 'CreateJob', async (req, who) => {
      const { job, created } = await uc.jobs.create(who, {
        definitionJson: req.definitionJson,
        replace: req.replace,
        expectedVersion: req.expectedVersion || undefined,
      });
      return { job: jobInfoToPb(job), created };
    }),
    describeJob: unary(ctx, 'DescribeJob', async (req, who) => jobInfoToPb(await uc.jobs.describe(who, req.name))),
    listJobs: unary(ctx, 'ListJobs', async (_req, who) => ({ jobs: (await uc.jobs.list(who)).map(jobInfoToPb) })),
    deleteJob: unary(ctx, 'DeleteJob', async (req, who) => {
      await uc.jobs.delete(who, req.name);
      return {};
    }),
    whoAmI: unary(ctx, 'WhoAmI', async (_req, who) => ({ name: who.name, role: who.role, groups: who.groups })),

    execute: unary(ctx, 'Execute', async (req, who) => {
      const res = await uc.executions.execute(who, {
        job: req.job,
        args: req.args,
        target: req.target,
        timeoutSeconds: req.timeoutSeconds,
        waitOfflineMs: req.waitOfflineMs,
        batchSize: req.batchSize,
        maxFailures: req.maxFailures,
        dryRun: req.dryRun,
      });
      return {
        executionId: res.execution?.id ?? '',
        execution: res.execution ? executionToPb(res.execution) : undefined,
        dryRun: res.dryRun ?? [],
      };
    }),
    getExecution: unary(ctx, 'GetExecution', async (req, who) => executionToPb(await uc.executions.get(who, req.id))),
    listExecutions: unary(ctx, 'ListExecutions', async (req, who) => ({
      executions: (await uc.executions.list(who, { job: req.job, state: executionStateFromPb(req.state), limit: req.limit })).map(executionToPb),
    })),
    cancelExecution: unary(ctx, 'CancelExecution', async (req, who) => executionToPb(await uc.executions.cancel(who, req.id, req.reason))),
    watchExecution: serverStream(ctx, 'WatchExecution', async function* (req, who, signal) {
      for await (const x of uc.executions.watch(who, req.id, signal)) yield executionToPb(x);
    }),
    getLogs: serverStream(ctx, 'GetLogs', async function* (req, who, signal) {
      for await (const c of uc.logs.stream(who, { executionId: req.executionId, follow: req.follow, executor: req.executor }, signal)) {
        yield { executionId: c.executionId, executorId: c.executorId, executorName: c.executorName, stream: c.stream, data: c.data, seq: c.seq, atMs: c.atMs };
      }
    }),
    listExecutors: unary(ctx, 'ListExecutors', async (_req, who) => ({ executors: (await uc.executors.list(who)).map(executorToPb) })),
    describeExecutor: unary(ctx, 'DescribeExecutor', async (req, who) => executorToPb(await uc.executors.describe(who, req.idOrName))),
    removeExecutor: unary(ctx, 'RemoveExecutor', async (req, who) => ({ executor: executorToPb(await uc.executors.remove(who, req.idOrName)) })),
    putFile: clientStream(ctx, 'PutFile', later('PutFile')),
    getFile: serverStream(ctx, 'GetFile', laterStream('GetFile')),
    listFiles: unary(ctx, 'ListFiles', later('ListFiles')),
    deleteFile: unary(ctx, 'DeleteFile', later('DeleteFile')),
  };
}
