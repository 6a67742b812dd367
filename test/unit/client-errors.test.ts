// How the client words a failed call: a controller that cannot be reached, or does not answer
// before the deadline, is `unavailable` (the same call may work later, exit 3); one whose
// certificate does not verify is not retryable; an error the controller sent keeps its kind.

import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { toGridError } from '../../src/client/client.js';
import { ERROR_KIND_METADATA_KEY, ExitCode, GrpcCode, toExitCode, UnavailableError } from '../../src/errors.js';

function serviceError(code: number, details: string, kind?: string): ServiceError {
  const metadata = new Metadata();
  if (kind) metadata.set(ERROR_KIND_METADATA_KEY, kind);
  return Object.assign(new Error(details), { code, details, metadata });
}

describe('toGridError', () => {
  it('no answer before the deadline: unavailable, retryable, exit 3', () => {
    const e = toGridError(serviceError(GrpcCode.DEADLINE_EXCEEDED, 'Deadline exceeded'), 'grid-1:7070');
    expect(e).toBeInstanceOf(UnavailableError);
    expect(e.message).toBe('the controller at grid-1:7070 did not answer in time');
    expect((e as UnavailableError).retryable).toBe(true);
    expect(toExitCode(e)).toBe(ExitCode.UNAVAILABLE);
  });

  it('unreachable: unavailable; a deadline the controller itself reports keeps its kind', () => {
    expect(toGridError(serviceError(GrpcCode.UNAVAILABLE, 'No connection established'), 'grid-1:7070').message).toBe(
      'cannot reach the controller at grid-1:7070: No connection established',
    );
    const theirs = toGridError(serviceError(GrpcCode.DEADLINE_EXCEEDED, 'the lock wait ended', 'deadline_exceeded'), 'grid-1:7070');
    expect(theirs).not.toBeInstanceOf(UnavailableError);
    expect(toExitCode(theirs)).toBe(ExitCode.FAILURE);
  });
});
