// ExecutorService.Heartbeats: an executor's heartbeats on one long-lived stream. The first
// message authenticates (certificate, then secret) and binds the stream to that executor; the
// registry checks every later beat against the record (removed, credentials changed, certificate
// no longer current) without hashing the secret again. Beats are answered one by one, in order.

import { status, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { UnauthenticatedError, UnavailableError } from '../../../errors.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../../../gen/grid/v1/executor.js';
import { ExecutorState } from '../../../gen/grid/v1/types.js';
import { peerCertificate } from '../../../tls/grpc.js';
import { HeartbeatNotRecordedError, type HeartbeatStream } from '../../heartbeats.js';
import type { ExecutorUseCases } from '../../use-cases.js';
import { executorStateToPb } from './convert.js';
import { accessLine, toServiceError, type HandlerContext } from './handlers.js';

export interface HeartbeatStreams {
  handler: (call: ServerDuplexStream<HeartbeatRequest, HeartbeatResponse>) => void;
  /** Ends every open stream (the controller is stopping): executors reconnect, here or elsewhere. */
  endAll(): void;
}

export function heartbeatStreams(ctx: HandlerContext, uc: Pick<ExecutorUseCases, 'registry' | 'executions'>): HeartbeatStreams {
  const { registry, executions } = uc;
  const open = new Set<(err?: Error) => void>();

  const handler = (call: ServerDuplexStream<HeartbeatRequest, HeartbeatResponse>): void => {
    const started = performance.now();
    let session: HeartbeatStream | undefined;
    let caller: string | undefined;
    let ended = false;
    let queue = Promise.resolve();

    // Ends the stream once: with the error's status, or OK; `gone` = the client went away first.
    const finish = (err?: unknown, gone = false): void => {
      if (ended) return;
      ended = true;
      open.delete(finish);
      session?.close();
      let code: number = gone ? status.CANCELLED : status.OK;
      if (gone) {
        // nothing to send
      } else if (err) {
        const e = toServiceError(err, ctx.log, 'Heartbeats', ctx.backendError);
        code = e.code ?? status.UNKNOWN;
        // 'error' makes grpc-js send this status and end the call.
        call.emit('error', e as ServiceError);
      } else call.end();
      accessLine(ctx.log, call.getPath(), code, started, caller);
    };
    open.add(finish);

    const beat = async (req: HeartbeatRequest): Promise<void> => {
      if (ended) return;
      if (!session) {
        caller = req.executorId ? `executor:${req.executorId}` : undefined;
        const s = await registry.openHeartbeats(req.executorId, req.executorSecret, peerCertificate(call), (err) => finish(err));
        session = s;
        if (ended) s.close();
      } else if (req.executorId && req.executorId !== session.executorId) {
        throw new UnauthenticatedError(`this heartbeat stream belongs to executor ${session.executorId}; executor ${req.executorId} must open its own`);
      }
      const id = session.executorId;
      let res;
      try {
        res = await session.beat({ version: req.version, runningTasks: req.runningTasks, load: req.load, draining: req.draining });
      } catch (err) {
        if (!(err instanceof HeartbeatNotRecordedError)) throw err;
        // etcd did not take this one in time: it fails, and the stream stays open. Ending it made
        // the executor open another and authenticate again, which a controller already behind
        // could least afford (10,000 executors on two cores never got out of it).
        if (!ended) call.write({ state: ExecutorState.EXECUTOR_STATE_UNSPECIFIED, pingDeadlineSeconds: 0, cancelledExecutions: [], stop: [], notRecorded: err.message });
        return;
      }
      const stop = req.running.length ? await executions.tasksToStop(id, req.running.map((t) => ({ executionId: t.executionId, taskKey: t.taskKey, attempt: t.attempt }))) : [];
      if (!ended) call.write({ state: executorStateToPb(res.state), pingDeadlineSeconds: res.pingDeadlineSeconds, cancelledExecutions: [], stop, notRecorded: '' });
    };

    call.on('data', (req: HeartbeatRequest) => {
      queue = queue.then(() => beat(req)).catch((err: unknown) => finish(err));
    });
    // The executor closed its side (it stops): answer what is queued, then end.
    call.on('end', () => {
      queue = queue.then(() => finish());
    });
    call.on('cancelled', () => finish(undefined, true));
    call.on('close', () => finish(undefined, true));
  };

  return {
    handler,
    endAll: () => {
      for (const finish of [...open]) finish(new UnavailableError('the controller is stopping: heartbeat on a new stream'));
    },
  };
}
