// The ControllerService adapter: proto in, use-case call, proto out, and for each mutating
// method what its audit line records (action, target, execution id). Nothing else lives here.

import type { UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ControllerServiceServer } from '../../../gen/grid/v1/controller.js';
import { NotImplementedError, ValidationError } from '../../../errors.js';
import type { FileInfo } from '../../../gen/grid/v1/types.js';
import type { StoredFile } from '../../files.js';
import type { ControllerUseCases } from '../../use-cases.js';
import { executionStateFromPb, executionToPb, executorToPb, jobInfoToPb } from './convert.js';
import { executeAudit, executeInput, executeResponse } from './execute.js';
import { clientStream, serverStream, unary, type HandlerContext } from './handlers.js';
import { API_VERSION, VERSION } from '../../../version.js';

/** The job a definition names, for the audit line of a create that may have been refused. */
function jobNameIn(definitionJson: string): string | undefined {
  const name = (JSON.parse(definitionJson) as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

function fileInfoToPb(f: StoredFile): FileInfo {
  return { name: f.name, size: f.size, digest: f.digest, modifiedAtMs: f.modifiedAtMs };
}

export function controllerService(ctx: HandlerContext, uc: ControllerUseCases): ControllerServiceServer & UntypedServiceImplementation {
  return {
    createJob: unary(ctx, 'CreateJob', async (req, who) => {
      const { job, created } = await uc.jobs.create(who, {
        definitionJson: req.definitionJson,
        replace: req.replace,
        expectedVersion: req.expectedVersion || undefined,
      });
      return { job: jobInfoToPb(job), created };
    }, {
      action: (req) => (req.replace ? 'job.replace' : 'job.create'),
      target: (req, res) => res?.job?.definition?.name ?? jobNameIn(req.definitionJson),
    }),
    describeJob: unary(ctx, 'DescribeJob', async (req, who) => jobInfoToPb(await uc.jobs.describe(who, req.name))),
    listJobs: unary(ctx, 'ListJobs', async (_req, who) => ({ jobs: (await uc.jobs.list(who)).map(jobInfoToPb) })),
    deleteJob: unary(ctx, 'DeleteJob', async (req, who) => {
      await uc.jobs.delete(who, req.name);
      return {};
    }, { action: 'job.delete', target: (req) => req.name }),
    whoAmI: unary(ctx, 'WhoAmI', async (_req, who) => ({ name: who.name, role: who.role, groups: who.groups, controllerVersion: VERSION, apiVersion: API_VERSION })),
    getHealth: unary(ctx, 'GetHealth', async (_req, who) => {
      if (!uc.health) throw new NotImplementedError('this controller does not report its health');
      const h = await uc.health.report(who);
      return {
        etcd: {
          endpoints: h.etcd.endpoints,
          version: h.etcd.status?.version ?? '',
          dbSizeBytes: h.etcd.status?.dbSize ?? 0,
          dbSizeInUseBytes: h.etcd.status?.dbSizeInUse ?? 0,
          error: h.etcd.error,
        },
        nats: { servers: h.nats.servers, streams: h.nats.streams, error: h.nats.error },
        retention: h.retention && {
          policy: h.retention.policy,
          finishedKept: h.retention.finishedKept,
          prunedBeforeMs: h.retention.status.pruned_before_ms,
          deletedTotal: h.retention.status.deleted_total,
        },
      };
    }),

    execute: unary(ctx, 'Execute', async (req, who) => executeResponse(await uc.executions.execute(who, executeInput(req))), executeAudit),
    issueNatsCredentials: unary(ctx, 'IssueNatsCredentials', async (req, who) => {
      if (!uc.natsCredentials) throw new NotImplementedError('this controller does not issue NATS credentials');
      return uc.natsCredentials.issue(who, req.userPublicKey, req.days);
    }, {
      action: 'nats.credentials',
      target: (req) => req.userPublicKey,
    }),
    getExecution: unary(ctx, 'GetExecution', async (req, who) => executionToPb(await uc.executions.get(who, req.id))),
    listExecutions: unary(ctx, 'ListExecutions', async (req, who) => {
      const page = await uc.executions.list(who, { job: req.job, state: executionStateFromPb(req.state), limit: req.limit, pageAfter: req.pageAfter });
      return {
        executions: page.executions.map(executionToPb),
        nextPage: page.next,
        prunedBeforeMs: page.prunedBeforeMs,
        retention: page.retention,
        keysRead: page.keysRead,
      };
    }),
    cancelExecution: unary(ctx, 'CancelExecution', async (req, who) => executionToPb(await uc.executions.cancel(who, req.id, req.reason)), {
      action: 'execution.cancel',
      target: (req) => req.id,
      executionId: (req) => req.id,
    }),
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
    removeExecutor: unary(ctx, 'RemoveExecutor', async (req, who) => ({ executor: executorToPb(await uc.executors.remove(who, req.idOrName)) }), {
      action: 'executor.remove',
      target: (req, res) => res?.executor?.name ?? req.idOrName,
      executorId: (_req, res) => res?.executor?.id,
    }),
    putFile: clientStream(ctx, 'PutFile', async (messages, who) => {
      // The first message names the file; every later one is a chunk of it.
      const it = messages[Symbol.asyncIterator]();
      const first = await it.next();
      if (first.done || first.value.part?.$case !== 'info') {
        throw new ValidationError('PutFile: the first message must carry the file\'s info (its name)');
      }
      const { name, size, digest } = first.value.part.info;
      const chunks = (async function* () {
        for (;;) {
          const n = await it.next();
          if (n.done) return;
          if (n.value.part?.$case !== 'chunk') throw new ValidationError('PutFile: only the first message may carry the file\'s info');
          yield n.value.part.chunk;
        }
      })();
      return fileInfoToPb(await uc.files.put(who, { name, size, digest }, chunks));
    }, { action: 'file.put', target: (first, res) => res?.name ?? (first?.part?.$case === 'info' ? first.part.info.name : undefined) }),
    getFile: serverStream(ctx, 'GetFile', async function* (req, who, signal) {
      for await (const c of uc.files.get(who, req.name, signal)) {
        yield { info: c.info ? fileInfoToPb(c.info) : undefined, chunk: Buffer.from(c.chunk.buffer, c.chunk.byteOffset, c.chunk.byteLength) };
      }
    }),
    listFiles: unary(ctx, 'ListFiles', async (_req, who) => ({ files: (await uc.files.list(who)).map(fileInfoToPb) })),
    deleteFile: unary(ctx, 'DeleteFile', async (req, who) => {
      await uc.files.delete(who, req.name);
      return {};
    }, { action: 'file.delete', target: (req) => req.name }),
  };
}
