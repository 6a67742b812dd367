// What every front door shares: the bearer token taken from an Authorization header, and the
// status each kind of error is answered with (gRPC code, HTTP status) from errors.ts.

import { describe, expect, it } from 'vitest';
import { bearerToken } from '../../src/controller/auth.js';
import {
  ConflictError,
  FailedPreconditionError,
  GrpcCode,
  LimitExceededError,
  NotFoundError,
  PermissionDeniedError,
  toGrpcCode,
  toHttpStatus,
  UnauthenticatedError,
  UnavailableError,
  ValidationError,
} from '../../src/errors.js';

describe('bearerToken', () => {
  it('takes the token of "Bearer <token>", whatever the case of the scheme and the spaces around', () => {
    expect(bearerToken('Bearer abc.def')).toBe('abc.def');
    expect(bearerToken('  bearer   s3cret ')).toBe('s3cret');
  });

  it('is undefined for no header, another scheme or a scheme alone', () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken('Basic dXNlcjpwdw==')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
  });
});

describe('error kinds to statuses', () => {
  it('gives each kind its HTTP status beside its gRPC code', () => {
    const cases: Array<[Error, number, number]> = [
      [new ValidationError('x: bad'), GrpcCode.INVALID_ARGUMENT, 400],
      [new NotFoundError('job', 'j'), GrpcCode.NOT_FOUND, 404],
      [new ConflictError('job', 'j'), GrpcCode.ABORTED, 409],
      [new UnauthenticatedError('no token'), GrpcCode.UNAUTHENTICATED, 401],
      [new PermissionDeniedError('no'), GrpcCode.PERMISSION_DENIED, 403],
      [new FailedPreconditionError('ended'), GrpcCode.FAILED_PRECONDITION, 409],
      [new LimitExceededError('streams', 'too many'), GrpcCode.RESOURCE_EXHAUSTED, 429],
      [new UnavailableError('etcd is down'), GrpcCode.UNAVAILABLE, 503],
    ];
    for (const [err, grpc, http] of cases) {
      expect([err.name, toGrpcCode(err), toHttpStatus(err)]).toEqual([err.name, grpc, http]);
    }
  });

  it('answers 500 for anything that is not one of GRID\'s errors', () => {
    expect(toHttpStatus(new Error('boom'))).toBe(500);
    expect(toHttpStatus('boom')).toBe(500);
  });
});
