// Every failure GRID reports has its own class here, and this file is the one place that maps
// them to gRPC status codes (server side), back from gRPC statuses (client side), to HTTP
// statuses (the HTTP door), and to CLI exit codes. Nothing matches errors by their message text.

export type ErrorKind =
  | 'validation'
  | 'not_found'
  | 'already_exists'
  | 'conflict'
  | 'unauthenticated'
  | 'permission_denied'
  | 'config'
  | 'unavailable'
  | 'failed_precondition'
  | 'resource_exhausted'
  | 'deadline_exceeded'
  | 'cancelled'
  | 'unimplemented'
  | 'internal';

/** One problem in an input: the field path, and a sentence that names the value and what is valid. */
export interface Problem {
  path: string;
  message: string;
}

export abstract class GridError extends Error {
  abstract readonly kind: ErrorKind;
  /** True when the same call may succeed if tried again later. */
  readonly retryable: boolean = false;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class ValidationError extends GridError {
  readonly kind = 'validation';
  readonly problems: Problem[];
  constructor(problems: Problem[] | string, options?: { cause?: unknown; subject?: string }) {
    const list = typeof problems === 'string' ? [{ path: '', message: problems }] : problems;
    super(formatProblems(list, options?.subject), options);
    this.problems = list;
  }
}

export function formatProblem(p: Problem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

function formatProblems(problems: Problem[], subject?: string): string {
  const lines = problems.map(formatProblem);
  const head = subject ? `${subject}: ` : '';
  if (lines.length <= 1) return head + (lines[0] ?? 'invalid input');
  return `${head}${lines.length} problems: ${lines.join('; ')}`;
}

export class NotFoundError extends GridError {
  readonly kind = 'not_found';
  constructor(readonly what: string, readonly id: string, hint?: string) {
    super(`${what} "${id}" not found${hint ? ` (${hint})` : ''}`);
  }
}

export class AlreadyExistsError extends GridError {
  readonly kind = 'already_exists';
  constructor(readonly what: string, readonly id: string, hint?: string) {
    super(`${what} "${id}" already exists${hint ? ` (${hint})` : ''}`);
  }
}

/** A compare-and-swap lost to a concurrent writer; re-read and try again. */
export class ConflictError extends GridError {
  readonly kind = 'conflict';
  override readonly retryable = true;
  constructor(readonly what: string, readonly id: string, detail?: string) {
    super(`${what} "${id}" was changed concurrently${detail ? `: ${detail}` : ''}`);
  }
}

/**
 * A write made from a version of a record that is no longer the stored one (`apply` of a file
 * whose `version` another writer has moved past): read it again and redo the edit.
 */
export class StaleVersionError extends ConflictError {
  constructor(
    what: string,
    id: string,
    readonly expected: number,
    /** The stored version now; undefined when the record has been deleted since. */
    readonly current: number | undefined,
    opts: { subject?: string; hint: string },
  ) {
    super(what, id);
    const since = current === undefined ? `was deleted since version ${expected}` : `was changed since version ${expected} (it is now version ${current})`;
    this.message = `${opts.subject ? `${opts.subject}: ` : ''}${what} "${id}" ${since}; ${opts.hint}`;
  }
}

export class UnauthenticatedError extends GridError {
  readonly kind = 'unauthenticated';
}

export class PermissionDeniedError extends GridError {
  readonly kind = 'permission_denied';
}

/** A configuration file, variable or flag is wrong; `key` names it. */
export class ConfigError extends GridError {
  readonly kind = 'config';
  constructor(readonly key: string, message: string, options?: { cause?: unknown }) {
    super(key ? `config ${key}: ${message}` : message, options);
  }
}

/** A program GRID needs is not installed; says which Debian package provides it. */
export class MissingBinaryError extends ConfigError {
  constructor(readonly binary: string, readonly debianPackage: string) {
    super('', `"${binary}" was not found on PATH; install it with: apt-get install ${debianPackage}`);
  }
}

/**
 * A server GRID needs (the controller, etcd, NATS) cannot be reached or is not answering; trying
 * again later may work. `retryable: false` when it answers but the TLS set-up refuses it, which
 * no retry mends.
 */
export class UnavailableError extends GridError {
  readonly kind = 'unavailable';
  override readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.retryable = options?.retryable ?? true;
  }
}

export class FailedPreconditionError extends GridError {
  readonly kind = 'failed_precondition';
}

/**
 * One of GRID's limits (`limits.<key>` in the controller config) would be exceeded: too many
 * streams open, too many tasks, a record too large to store. Nothing was done. `retryable` when
 * the same call may pass later by itself (a stream slot is given back when a stream ends).
 */
export class LimitExceededError extends GridError {
  readonly kind = 'resource_exhausted';
  override readonly retryable: boolean;
  constructor(readonly key: string, message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options);
    this.retryable = options?.retryable ?? false;
  }
}

export class DeadlineExceededError extends GridError {
  readonly kind = 'deadline_exceeded';
  override readonly retryable = true;
}

export class CancelledError extends GridError {
  readonly kind = 'cancelled';
}

/** The API names this call but this controller does not do it (yet). */
export class NotImplementedError extends GridError {
  readonly kind = 'unimplemented';
}

export class InternalError extends GridError {
  readonly kind = 'internal';
}

// ---- gRPC status codes (numbers from the gRPC spec, so this file needs no transport import) ----

export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

const kindToCode: Record<ErrorKind, number> = {
  validation: GrpcCode.INVALID_ARGUMENT,
  not_found: GrpcCode.NOT_FOUND,
  already_exists: GrpcCode.ALREADY_EXISTS,
  conflict: GrpcCode.ABORTED,
  unauthenticated: GrpcCode.UNAUTHENTICATED,
  permission_denied: GrpcCode.PERMISSION_DENIED,
  config: GrpcCode.FAILED_PRECONDITION,
  unavailable: GrpcCode.UNAVAILABLE,
  failed_precondition: GrpcCode.FAILED_PRECONDITION,
  resource_exhausted: GrpcCode.RESOURCE_EXHAUSTED,
  deadline_exceeded: GrpcCode.DEADLINE_EXCEEDED,
  cancelled: GrpcCode.CANCELLED,
  unimplemented: GrpcCode.UNIMPLEMENTED,
  internal: GrpcCode.INTERNAL,
};

/** Metadata key carrying the error kind, so a client can rebuild the exact class. */
export const ERROR_KIND_METADATA_KEY = 'grid-error-kind';

export function toGrpcCode(err: unknown): number {
  return err instanceof GridError ? kindToCode[err.kind] : GrpcCode.INTERNAL;
}

/** Rebuilds a typed error from a gRPC status seen by a client. */
export function fromGrpcStatus(code: number, details: string, kind?: string): GridError {
  const k = (kind as ErrorKind | undefined) ?? codeToKind(code);
  switch (k) {
    case 'validation':
      return new ValidationError(details);
    case 'not_found':
      return withMessage(new NotFoundError('', ''), details);
    case 'already_exists':
      return withMessage(new AlreadyExistsError('', ''), details);
    case 'conflict':
      return withMessage(new ConflictError('', ''), details);
    case 'unauthenticated':
      return new UnauthenticatedError(details);
    case 'permission_denied':
      return new PermissionDeniedError(details);
    case 'config':
      return new ConfigError('', details);
    case 'unavailable':
      return new UnavailableError(details);
    case 'failed_precondition':
      return new FailedPreconditionError(details);
    case 'resource_exhausted':
      return new LimitExceededError('', details);
    case 'deadline_exceeded':
      return new DeadlineExceededError(details);
    case 'cancelled':
      return new CancelledError(details);
    case 'unimplemented':
      return new NotImplementedError(details);
    default:
      return new InternalError(details);
  }
}

function withMessage<E extends GridError>(err: E, message: string): E {
  err.message = message;
  return err;
}

function codeToKind(code: number): ErrorKind {
  for (const [kind, c] of Object.entries(kindToCode)) if (c === code) return kind as ErrorKind;
  return 'internal';
}

// ---- HTTP statuses (the HTTP door) ----

/**
 * The HTTP status of each kind. `failed_precondition` (cancel of an execution that has ended, an
 * idempotency key reused for another request, a dry run's target that matches nothing) is 409:
 * the request conflicts with the resource's current state. 412 is left to what HTTP reserves it
 * for, conditional headers (If-Match…), which GRID does not evaluate. `config` on the server is
 * its own misconfiguration (500); `cancelled` is the caller having gone away (499, as nginx logs it).
 */
const kindToHttp: Record<ErrorKind, number> = {
  validation: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  failed_precondition: 409,
  resource_exhausted: 429,
  cancelled: 499,
  internal: 500,
  config: 500,
  unimplemented: 501,
  unavailable: 503,
  deadline_exceeded: 504,
};

export function toHttpStatus(err: unknown): number {
  return err instanceof GridError ? kindToHttp[err.kind] : 500;
}

// ---- CLI exit codes ----

/**
 * Every exit code of grid-cli, the controller and the executor (the README's table is this one).
 * A script can tell "the job failed" (1) from "I typed it wrong" (2), "try again later" (3),
 * "the job ran out of time" (4), "someone cancelled it" (5) and "you may not" (77).
 */
export const ExitCode = {
  OK: 0,
  /** A failure: the job failed (execute --wait/--follow, getlogs --follow), or the server refused the request. */
  FAILURE: 1,
  /** Bad input: an unknown command or flag, a value that is not valid, a config file in error. */
  USAGE: 2,
  /** The controller (or etcd or NATS behind it) could not be reached or did not answer; the same command may work later. */
  UNAVAILABLE: 3,
  /** The execution ended TIMED_OUT (execute --wait/--follow, getlogs --follow). */
  TIMED_OUT: 4,
  /** The execution ended CANCELLED (execute --wait/--follow, getlogs --follow). */
  CANCELLED: 5,
  /**
   * Refused (auth): the token is not accepted, or its role or groups do not allow the call; for
   * the executor also a refused registration (a name taken, groups outside the token's) or, once
   * registered, the executor itself refused (removed from the registry, its secret or NATS user
   * revoked). Retrying or restarting cannot mend that, only other credentials can, so a service
   * manager must not restart on it (systemd: RestartPreventExitStatus=77). 77 is EX_NOPERM of
   * sysexits.h, and no code Node itself exits with.
   */
  REFUSED: 77,
} as const;

/**
 * Bad input from the operator is a usage error (2); a server that cannot be reached or is not
 * answering (the controller, or etcd or NATS behind it), so that the same command may work
 * later, is 3; everything else is a failure (1). A limit exceeded is a failure too: the server
 * answered and refused, and only less work (a narrower target, fewer open streams) or a higher
 * limit in its config mends it. The controller exits with these.
 */
export function toExitCode(err: unknown): number {
  if (err instanceof ValidationError || err instanceof ConfigError) return ExitCode.USAGE;
  if (err instanceof UnavailableError && err.retryable) return ExitCode.UNAVAILABLE;
  return ExitCode.FAILURE;
}

/**
 * grid-cli's exit code for an error: as toExitCode, except that credentials refused (the token
 * not accepted, a role or groups that do not allow the call, a NATS user refused) are REFUSED, so
 * that a script can tell "you may not" from a failure.
 */
export function clientExitCode(err: unknown): number {
  if (err instanceof UnauthenticatedError || err instanceof PermissionDeniedError) return ExitCode.REFUSED;
  return toExitCode(err);
}

/**
 * The executor's exit code for an error: a refusal by the controller (unauthenticated,
 * permission denied, a name already taken) is REFUSED, so that a service manager can tell it
 * from a failure that a restart may mend; everything else as toExitCode.
 */
export function executorExitCode(err: unknown): number {
  if (err instanceof AlreadyExistsError) return ExitCode.REFUSED;
  return clientExitCode(err);
}
