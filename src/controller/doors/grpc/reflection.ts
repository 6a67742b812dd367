// gRPC server reflection (grpc.reflection.v1 and v1alpha), so generic tools (grpcurl, Postman,
// grpcui) can list and call the API without GRID's .proto files. @grpc/reflection is fed
// @grpc/proto-loader's package definition of proto/, built from the FileDescriptorSet that
// `make proto` compiles into src/gen (so the built controller reads no .proto file at run time).
// Behind the same tokens as every other call: any valid token (any role) may read the schema;
// a call without one is UNAUTHENTICATED before a single message is answered.

import type { Server, ServerDuplexStream, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { DESCRIPTOR_SET } from '../../../gen/descriptor-set.js';
import { metadataToken, toServiceError, type HandlerContext } from './handlers.js';

/** Adds the reflection services to `server`, each call authenticated by its bearer token. */
export function addReflection(server: Pick<Server, 'addService'>, ctx: HandlerContext): void {
  const pkg = loadFileDescriptorSetFromBuffer(Buffer.from(DESCRIPTOR_SET, 'base64'));
  new ReflectionService(pkg).addToServer({
    addService: (service: ServiceDefinition, impl: UntypedServiceImplementation) => server.addService(service, authenticated(ctx, impl)),
  });
}

/** The library's handlers (one bidi stream each), refusing a call whose token is not accepted. */
function authenticated(ctx: HandlerContext, impl: UntypedServiceImplementation): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [method, handler] of Object.entries(impl)) {
    out[method] = (call: ServerDuplexStream<unknown, unknown>) => {
      try {
        ctx.auth.authenticate(metadataToken(call.metadata));
      } catch (err) {
        call.emit('error', toServiceError(err, ctx.log, `reflection ${method}`));
        return;
      }
      (handler as (c: ServerDuplexStream<unknown, unknown>) => void)(call);
    };
  }
  return out;
}
