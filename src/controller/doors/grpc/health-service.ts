// The standard grpc.health.v1 service, readable without a token (as load balancers and kubelet
// probes ask). NOT_SERVING while etcd or NATS does not answer, and while the controller shuts down.

import type { ServerUnaryCall, sendUnaryData, ServerWritableStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as Status,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
} from '../../../gen/grpc/health/v1/health.js';

export class Health {
  private serving = true;
  private readonly watchers = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  constructor(private readonly services: string[]) {}

  setServing(serving: boolean): void {
    this.serving = serving;
    for (const w of this.watchers) w.write(this.statusOf(w.request.service));
  }

  private statusOf(service: string): HealthCheckResponse {
    if (service !== '' && !this.services.includes(service)) return { status: Status.SERVICE_UNKNOWN };
    return { status: this.serving ? Status.SERVING : Status.NOT_SERVING };
  }

  service(): HealthServer & UntypedServiceImplementation {
    return {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: sendUnaryData<HealthCheckResponse>) => {
        const s = this.statusOf(call.request.service);
        if (s.status === Status.SERVICE_UNKNOWN) cb({ code: 5, details: `unknown service "${call.request.service}"` });
        else cb(null, s);
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        this.watchers.add(call);
        call.write(this.statusOf(call.request.service));
        call.on('cancelled', () => this.watchers.delete(call));
        call.on('close', () => this.watchers.delete(call));
      },
    };
  }

  /** Ends every Watch stream, so the server can shut down without waiting on them. */
  close(): void {
    for (const w of this.watchers) w.end();
    this.watchers.clear();
  }
}
