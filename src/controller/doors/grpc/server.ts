// The gRPC front door: one grpc-js server carrying ControllerService (people), ExecutorService
// (executors), grpc.health.v1 and server reflection (reflection.ts), each a thin adapter over
// the use-cases it is handed. Health answers NOT_SERVING while etcd or NATS does not answer
// (readiness.ts), and once closing.

import { Server, status, type sendUnaryData, type ServerUnaryCall, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { ControllerServiceService } from '../../../gen/grid/v1/controller.js';
import { ExecutorServiceService } from '../../../gen/grid/v1/executor.js';
import { HealthService } from '../../../gen/grpc/health/v1/health.js';
import { serverCredentials, type ServerTls } from '../../../tls/grpc.js';
import type { Readiness } from '../../readiness.js';
import type { ControllerUseCases, ExecutorUseCases } from '../../use-cases.js';
import { controllerService } from './controller-service.js';
import { executorService } from './executor-service.js';
import { heartbeatStreams } from './heartbeat-stream.js';
import { accessLine, type HandlerContext } from './handlers.js';
import { Health } from './health-service.js';
import { encodeLogChunk } from './log-chunk-wire.js';
import { addReflection } from './reflection.js';
import type { HealthCheckRequest, HealthCheckResponse, HealthServer } from '../../../gen/grpc/health/v1/health.js';

/** The generated service, but GetLogs' chunks are written by the hand-written encoder (same bytes, fewer copies). */
const CONTROLLER_SERVICE = {
  ...ControllerServiceService,
  getLogs: { ...ControllerServiceService.getLogs, responseSerialize: encodeLogChunk },
} as const;

export interface GrpcDoor {
  /** host:port it listens on (the port chosen when the config asked for port 0). */
  address: string;
  /** Reports NOT_SERVING, then lets calls in flight finish (forced after 5 s). */
  close(): Promise<void>;
}

export async function serveGrpc(o: {
  /** host:port, as grpc_address in the config. */
  address: string;
  /** Absent: plaintext. */
  tls?: ServerTls;
  ctx: HandlerContext;
  controller: ControllerUseCases;
  executor: ExecutorUseCases;
  /** Whether etcd and NATS answer; absent = always SERVING until closed. */
  readiness?: Pick<Readiness, 'ready' | 'onChange'>;
}): Promise<GrpcDoor> {
  const health = new Health(['grid.v1.ControllerService', 'grid.v1.ExecutorService']);
  health.setServing(o.readiness?.ready() ?? true);
  const unwatch = o.readiness?.onChange((ready) => health.setServing(ready));
  const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
  server.addService(CONTROLLER_SERVICE, controllerService(o.ctx, o.controller));
  const beats = heartbeatStreams(o.ctx, o.executor);
  server.addService(ExecutorServiceService, executorService(o.ctx, o.executor, beats));
  server.addService(HealthService, withAccessLines(health.service(), o.ctx));
  addReflection(server, o.ctx);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.address, serverCredentials(o.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: o.address.replace(/:\d+$/, `:${port}`),
    close: () =>
      new Promise<void>((resolve) => {
        unwatch?.();
        health.setServing(false);
        health.close();
        // Heartbeat streams never end on their own: end them, so executors move on at once.
        beats.endAll();
        const force = setTimeout(() => server.forceShutdown(), 5_000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}

/** Health checks get their access line too (they take no token: no caller). */
function withAccessLines(hs: HealthServer & UntypedServiceImplementation, ctx: HandlerContext): HealthServer & UntypedServiceImplementation {
  return {
    ...hs,
    check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: sendUnaryData<HealthCheckResponse>) => {
      const started = performance.now();
      hs.check(call, (err, res) => {
        cb(err, res);
        accessLine(ctx.log, call.getPath(), err?.code ?? status.OK, started, undefined);
      });
    },
  };
}
