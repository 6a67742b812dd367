// The ExecutorService adapter: executors register, heartbeat and deregister here. Executors
// prove who they are in the request (registration token, then id + secret), not with a bearer token.
// Register, Deregister and RenewCertificate are audited; heartbeats, task claims, locks and file reads are not
// (they are the running of work an audited Execute released, many per second on a big fleet).

import type { Deadline, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { ExecutorServiceServer } from '../../../gen/grid/v1/executor.js';
import { executorStateToPb } from './convert.js';
import { metadataToken, serverStreamOpen, unaryOpen, type HandlerContext } from './handlers.js';
import type { AuditSpec } from '../../audit.js';
import type { BeginAnswer } from '../../executions.js';
import type { ExecutorUseCases } from '../../use-cases.js';
import type { BeginTaskResponse, LockRequest } from '../../../gen/grid/v1/executor.js';
import { peerCertificate } from '../../../tls/grpc.js';
import { heartbeatStreams, type HeartbeatStreams } from './heartbeat-stream.js';

function beginToPb(a: BeginAnswer): BeginTaskResponse {
  const t = a.task;
  return {
    proceed: a.proceed,
    reason: a.reason,
    secrets: a.secrets,
    lockToken: 0,
    later: a.later ?? false,
    attempt: a.attempt ?? 0,
    task: t
      ? {
          job: t.job,
          jobVersion: t.jobVersion,
          definitionJson: JSON.stringify(t.definition),
          args: t.args,
          deadlineMs: t.deadlineMs,
          timeoutMs: t.timeoutMs,
          maxAttempts: t.maxAttempts,
          backoffMs: t.backoffMs,
          files: t.files.map((f) => ({ name: f.name, path: f.path, template: f.template, mode: f.mode ?? '', digest: f.digest })),
        }
      : undefined,
  };
}

/** Milliseconds until a call's deadline (local: grpc-js makes it from the call's timeout on arrival). */
function msBefore(deadline: Deadline): number {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at - Date.now() : Infinity;
}

export function executorService(
  ctx: HandlerContext,
  uc: ExecutorUseCases,
  beats: HeartbeatStreams = heartbeatStreams(ctx, uc),
): ExecutorServiceServer & UntypedServiceImplementation {
  const { registry, executions, files, locks } = uc;
  // Every call but Register comes from a registered executor: its client certificate first.
  const certified = <Req extends { executorId: string }, Res>(method: string, fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>, audit?: AuditSpec<Req, Res>) =>
    unaryOpen<Req, Res>(
      ctx,
      method,
      async (req, call) => {
        await registry.checkCertificate(req.executorId, peerCertificate(call));
        return fn(req, call);
      },
      audit,
    );
  const lockOf = (req: LockRequest, mustBegin: boolean) =>
    executions.taskLock({ executorId: req.executorId, secret: req.executorSecret, executionId: req.executionId, taskKey: req.taskKey }, mustBegin);
  return {
    acquireLock: certified('AcquireLock', async (req: Parameters<ExecutorServiceServer['acquireLock']>[0]['request'], call) => {
      const { executor, lock, ticket } = await lockOf(req, true);
      // A waiting call ends when its caller goes away, and answers a second before its deadline.
      const gone = new AbortController();
      call.on('cancelled', () => gone.abort());
      const ms = Math.min(req.waitMs, msBefore(call.getDeadline()) - 1000);
      const r = await locks.acquire(lock, ticket, { executorId: executor.id, holder: executor.name }, { ms, signal: gone.signal });
      return { acquired: r.acquired, token: r.token, ahead: r.ahead, holder: r.holder, lock, ttlMs: r.ttlMs, remainingMs: r.remainingMs };
    }),
    refreshLock: certified('RefreshLock', async (req: Parameters<ExecutorServiceServer['refreshLock']>[0]['request']) => {
      const { executor, lock, ticket } = await lockOf(req, false);
      return locks.refresh(lock, ticket, req.token, executor.id);
    }),
    releaseLock: certified('ReleaseLock', async (req: Parameters<ExecutorServiceServer['releaseLock']>[0]['request']) => {
      const { executor, lock, ticket } = await lockOf(req, false);
      await locks.release(lock, ticket, req.token, executor.id);
      return {};
    }),
    register: unaryOpen(ctx, 'Register', async (req, call) => {
      // A bearer token is optional here; with one, an admin may --replace another executor.
      const token = metadataToken(call.metadata);
      // A registration still waiting for its turn is dropped if its caller gives up meanwhile.
      const gone = new AbortController();
      call.on('cancelled', () => gone.abort());
      const out = await registry.register({
        replaceSecret: req.replaceSecret || undefined,
        ...(token ? { replaceBy: ctx.auth.authenticate(token) } : {}),
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
        natsUserKey: req.natsUserKey || undefined,
        tlsPublicKey: req.tlsPublicKey || undefined,
      }, gone.signal);
      return {
        executorId: out.executorId,
        executorSecret: out.executorSecret,
        created: out.created,
        tlsCertificate: out.tlsCertificate ?? '',
        pingDeadlineSeconds: out.pingDeadlineSeconds,
        nats: {
          servers: out.natsServers,
          jobSubject: out.jobSubject,
          jobConsumer: out.jobConsumer,
          poolConsumers: out.poolConsumers,
          jobStream: 'GRID_JOBS',
          eventSubjectPrefix: 'grid.evt',
          logSubjectPrefix: 'grid.log',
          userJwt: out.natsUser?.jwt ?? '',
          inboxPrefix: out.natsUser?.inboxPrefix ?? '',
          tlsCa: out.natsCaPem ?? '',
        },
      };
    }, {
      action: 'executor.register',
      target: (req) => req.name,
      executorId: (req, res) => res?.executorId || req.executorId,
      who: (req) => {
        const token = registry.registrationTokenName(req.registrationToken);
        return token ? { kind: 'registration', token } : { kind: 'anonymous' };
      },
      hide: (req) => [req.registrationToken, req.executorSecret, req.replaceSecret],
    }),
    heartbeat: certified('Heartbeat', async (req: Parameters<ExecutorServiceServer['heartbeat']>[0]['request']) => {
      const res = await registry.heartbeat({
        executorId: req.executorId,
        executorSecret: req.executorSecret,
        version: req.version,
        runningTasks: req.runningTasks,
        load: req.load,
        draining: req.draining,
      });
      const stop = req.running.length ? await executions.tasksToStop(req.executorId, req.running.map((t) => ({ executionId: t.executionId, taskKey: t.taskKey, attempt: t.attempt }))) : [];
      return { state: executorStateToPb(res.state), pingDeadlineSeconds: res.pingDeadlineSeconds, cancelledExecutions: [], stop, notRecorded: '' };
    }),
    heartbeats: beats.handler,
    deregister: certified('Deregister', async (req: Parameters<ExecutorServiceServer['deregister']>[0]['request']) => {
      await registry.deregister(req.executorId, req.executorSecret);
      return {};
    }, {
      action: 'executor.deregister',
      target: (req) => registry.nameOf(req.executorId),
      executorId: (req) => req.executorId,
      who: (req) => ({ kind: 'executor', id: req.executorId }),
      hide: (req) => [req.executorSecret],
    }),
    beginTask: certified('BeginTask', async (req: Parameters<ExecutorServiceServer['beginTask']>[0]['request']) => {
      const res = await executions.beginTask({
        executorId: req.executorId,
        secret: req.executorSecret,
        session: req.session,
        executionId: req.executionId,
        taskKey: req.taskKey,
        retryOf: req.retryOf || undefined,
      });
      return beginToPb(res);
    }),
    beginTasks: certified('BeginTasks', async (req: Parameters<ExecutorServiceServer['beginTasks']>[0]['request']) => {
      const res = await executions.beginTasks({
        executorId: req.executorId,
        secret: req.executorSecret,
        session: req.session,
        // In BeginTasks a task's `attempt` is the attempt it retries (0 = none).
        tasks: req.tasks.map((t) => ({ executionId: t.executionId, taskKey: t.taskKey, retryOf: t.attempt || undefined })),
      });
      return { results: res.map(beginToPb) };
    }),
    renewCertificate: certified('RenewCertificate', async (req: Parameters<ExecutorServiceServer['renewCertificate']>[0]['request']) => ({
      tlsCertificate: await registry.renewCertificate(req.executorId, req.executorSecret, req.tlsPublicKey),
    }), {
      action: 'executor.renew_certificate',
      target: (req) => registry.nameOf(req.executorId),
      executorId: (req) => req.executorId,
      who: (req) => ({ kind: 'executor', id: req.executorId }),
      hide: (req) => [req.executorSecret],
    }),
    getTaskFile: serverStreamOpen(ctx, 'GetTaskFile', async function* (req, signal, call) {
      await registry.checkCertificate(req.executorId, peerCertificate(call));
      const input = { executorId: req.executorId, secret: req.executorSecret, executionId: req.executionId, taskKey: req.taskKey, name: req.name };
      await executions.taskFile(input);
      for await (const c of files.content(input.name, signal)) yield { data: Buffer.from(c.buffer, c.byteOffset, c.byteLength) };
    }),
  };
}
