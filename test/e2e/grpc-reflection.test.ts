// gRPC server reflection on a real controller, used as a generic tool would: with nothing but
// the standard reflection protocol (no GRID .proto file, no generated code), list the services,
// fetch ControllerService's descriptors, list its methods, and call one through a client built
// from them. Without a token the reflection call is refused; a token of any role (even metrics)
// may read the schema.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { loadPackageDefinition, makeGenericClientConstructor, Metadata, status, type ServiceDefinition, type ServiceError } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControllerServiceService } from '../../src/gen/grid/v1/controller.js';
import { channelCredentials } from '../../src/tls/grpc.js';
import { testClientTls } from '../harness/grpc-tls.js';
import { cleanupProcesses, REPO_ROOT, startController, TOKEN_SPECS, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';

/** A token of the least role: the schema is readable with any accepted token. */
const METRICS_TOKEN = 'e2e-reflection-metrics-token-9';

let servers: TestServers;
let controller: RunningController;

beforeAll(async () => {
  servers = await startServers();
  const tokens = [...TOKEN_SPECS, { name: 'prometheus', token: METRICS_TOKEN, role: 'metrics' }];
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: { tokens } });
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

// The reflection protocol's own definition, as any reflection client carries it.
const REFLECTION_PROTO = join(REPO_ROOT, 'node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto');

interface ReflectionResponse {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
}

function metadata(token?: string): Metadata {
  const md = new Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

/** One ServerReflectionInfo stream: sends the requests, then collects the answers until the server ends it. */
function reflect(requests: object[], token?: string): Promise<ReflectionResponse[]> {
  const pkg = loadPackageDefinition(loadSync(REFLECTION_PROTO)) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
  const client = new pkg.grpc.reflection.v1.ServerReflection(controller.address, channelCredentials(testClientTls()));
  return new Promise((resolve, reject) => {
    const out: ReflectionResponse[] = [];
    const call = client.ServerReflectionInfo(metadata(token));
    call.on('data', (m: ReflectionResponse) => out.push(m));
    call.on('error', (err: Error) => {
      client.close();
      reject(err);
    });
    call.on('end', () => {
      client.close();
      resolve(out);
    });
    for (const r of requests) call.write(r);
    call.end();
  });
}

/** A FileDescriptorSet (field 1, repeated FileDescriptorProto) of the files reflection returned. */
function descriptorSet(files: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const len: number[] = [];
    for (let n = f.length; ; n >>>= 7) {
      if (n < 0x80) {
        len.push(n);
        break;
      }
      len.push((n & 0x7f) | 0x80);
    }
    parts.push(Buffer.from([0x0a, ...len]), f);
  }
  return Buffer.concat(parts);
}

describe('gRPC server reflection', () => {
  it('lists ControllerService\'s methods to a client that has no GRID proto, and calls one; refuses a call without a token', async () => {
    const refused = await reflect([{ listServices: '*' }]).catch((e: ServiceError) => e);
    expect((refused as ServiceError).code).toBe(status.UNAUTHENTICATED);

    const [list] = await reflect([{ listServices: '*' }], METRICS_TOKEN);
    expect(list!.listServicesResponse!.service.map((s) => s.name).sort()).toEqual(['grid.v1.ControllerService', 'grid.v1.ExecutorService', 'grpc.health.v1.Health']);

    const [file] = await reflect([{ fileContainingSymbol: 'grid.v1.ControllerService' }], TOKENS.viewer);
    const files = file!.fileDescriptorResponse!.fileDescriptorProto;
    const pkg = loadFileDescriptorSetFromBuffer(descriptorSet(files));
    const service = pkg['grid.v1.ControllerService'] as ServiceDefinition;
    const methods = Object.values(service).map((m) => m.path).sort();
    expect(methods).toEqual(Object.values(ControllerServiceService).map((m) => m.path).sort());
    expect(methods).toContain('/grid.v1.ControllerService/Execute');

    // What grpcurl does next: a call built from the reflected descriptors alone.
    const Client = makeGenericClientConstructor(service, 'ControllerService');
    const client = new Client(controller.address, channelCredentials(testClientTls())) as unknown as {
      WhoAmI(req: object, md: Metadata, cb: (err: ServiceError | null, res: { name: string; role: string }) => void): void;
      close(): void;
    };
    const me = await new Promise<{ name: string; role: string }>((resolve, reject) =>
      client.WhoAmI({}, metadata(TOKENS.viewer), (err, res) => (err ? reject(err) : resolve(res))),
    );
    client.close();
    expect([me.name, me.role]).toEqual(['viewer', 'viewer']);
  });
});
