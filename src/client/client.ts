// Typed promise client for the controller's gRPC API, with a deadline on every call and
// errors rebuilt as GRID's own classes. Used by grid-cli, the executor and tests.

import { Metadata, type CallOptions, type ClientDuplexStream, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { ControllerServiceClient, type ExecuteRequest, type FileChunk, type ListExecutionsRequest, type PutFileRequest } from '../gen/grid/v1/controller.js';
import { ExecutionState, type Execution, type FileInfo, type LogChunk } from '../gen/grid/v1/types.js';

const TERMINAL_STATES: ReadonlySet<ExecutionState> = new Set([
  ExecutionState.EXECUTION_STATE_SUCCEEDED,
  ExecutionState.EXECUTION_STATE_FAILED,
  ExecutionState.EXECUTION_STATE_CANCELLED,
  ExecutionState.EXECUTION_STATE_TIMED_OUT,
]);
import { ExecutorServiceClient } from '../gen/grid/v1/executor.js';
import { HealthClient, type HealthCheckResponse } from '../gen/grpc/health/v1/health.js';
import { ERROR_KIND_METADATA_KEY, fromGrpcStatus, GrpcCode, UnavailableError } from '../errors.js';
import { channelCredentials, tlsFailureHint, type ClientTls } from '../tls/grpc.js';

export interface ClientOptions {
  /**
   * host:port of the controller, or several replicas' separated by commas: calls go to one, and
   * move to the next (in turn, round the list) once a call finds it unreachable or silent.
   */
  address: string;
  token?: string;
  /** Deadline for each unary call. */
  timeoutMs?: number;
  /** TLS to the controller; default: TLS verified against the system's CAs. */
  tls?: ClientTls;
  /** Told when calls move from one controller address to the next. */
  onFailover?: (from: string, to: string, why: Error) => void;
}

/** The addresses in a `host:port[,host:port…]` list, in order. */
export function controllerAddresses(list: string): string[] {
  const all = list.split(',').map((a) => a.trim()).filter(Boolean);
  return all.length ? all : [list];
}

type UnaryMethod<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>, cb: (err: ServiceError | null, res: Res) => void) => unknown;
type StreamMethod<Req, Res> = (req: Req, md: Metadata, opts: Partial<CallOptions>) => ClientReadableStream<Res>;
type DuplexMethod<Req, Res> = (md: Metadata, opts: Partial<CallOptions>) => ClientDuplexStream<Req, Res>;

export class GridClient {
  // Replaced together by rotate(); callers read them at each call.
  controller!: ControllerServiceClient;
  executors!: ExecutorServiceClient;
  health!: HealthClient;
  private readonly timeoutMs: number;
  private readonly addresses: string[];
  private current = 0;

  constructor(private readonly opts: ClientOptions) {
    this.addresses = controllerAddresses(opts.address);
    this.connect(opts.tls ?? {});
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  /** The controller address calls go to now. */
  get address(): string {
    return this.addresses[this.current]!;
  }

  private connect(tls: ClientTls): void {
    const { address } = this;
    const creds = channelCredentials(tls);
    const channelOpts = {
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      // Come back quickly after a controller restart (the default backoff grows to 2 minutes).
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2_000,
      // A larger HTTP/2 receive window: with the default 64 KiB, a followed log of large chunks
      // waits a round trip for every 64 KiB it reads.
      'grpc-node.flow_control_window': 4 * 1024 * 1024,
    };
    this.controller = new ControllerServiceClient(address, creds, channelOpts);
    // Share one channel between the three stubs.
    const channel = this.controller.getChannel();
    this.executors = new ExecutorServiceClient(address, creds, { ...channelOpts, channelOverride: channel });
    this.health = new HealthClient(address, creds, { ...channelOpts, channelOverride: channel });
  }

  /**
   * A call to `address` failed. When it found no controller there (unreachable, or no answer
   * before its deadline) and there are others, later calls go to the next one; calls still open
   * on the old connection finish or fail on their own. Returns the error, as GRID's.
   */
  private failed(err: ServiceError, address: string): Error {
    const gridErr = toGridError(err, address, this.opts.tls);
    const kind = err.metadata?.get(ERROR_KIND_METADATA_KEY)[0];
    const noController = (err.code === GrpcCode.UNAVAILABLE || err.code === GrpcCode.DEADLINE_EXCEEDED) && typeof kind !== 'string';
    if (noController && this.addresses.length > 1 && address === this.address) {
      const old = this.controller;
      this.current = (this.current + 1) % this.addresses.length;
      this.connect(this.opts.tls ?? {});
      setTimeout(() => old.close(), 60_000).unref();
      this.opts.onFailover?.(address, this.address, gridErr);
    }
    return gridErr;
  }

  /**
   * Switches to new TLS credentials (an executor's renewed certificate) without a restart: new
   * calls go over a new connection, and the old one is closed once calls on it have had
   * `graceMs` to finish.
   */
  rotate(tls: ClientTls, graceMs = 60_000): void {
    const old = this.controller;
    this.opts.tls = tls;
    this.connect(tls);
    setTimeout(() => old.close(), graceMs).unref();
  }

  private metadata(): Metadata {
    const md = new Metadata();
    if (this.opts.token) md.set('authorization', `Bearer ${this.opts.token}`);
    return md;
  }

  /** Calls a unary method of one of the stubs with the token and a deadline; `signal` cancels it. */
  call<Req, Res>(stub: object, method: UnaryMethod<Req, Res>, req: Req, timeoutMs = this.timeoutMs, signal?: AbortSignal): Promise<Res> {
    const address = this.address;
    return new Promise<Res>((resolve, reject) => {
      const cancel = () => call.cancel();
      const call = method.call(stub, req, this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        signal?.removeEventListener('abort', cancel);
        if (err) reject(this.failed(err, address));
        else resolve(res);
      }) as { cancel(): void };
      signal?.addEventListener('abort', cancel, { once: true });
      if (signal?.aborted) cancel();
    });
  }

  /** Calls a server-streaming method; the iterable ends with the stream and throws GRID errors. */
  async *stream<Req, Res>(stub: object, method: StreamMethod<Req, Res>, req: Req, signal?: AbortSignal): AsyncIterable<Res> {
    const address = this.address;
    const call = method.call(stub, req, this.metadata(), {});
    const onAbort = () => call.cancel();
    signal?.addEventListener('abort', onAbort);
    try {
      for await (const item of call as AsyncIterable<Res>) yield item;
    } catch (err) {
      if ((err as ServiceError).code === GrpcCode.CANCELLED && signal?.aborted) return;
      throw this.failed(err as ServiceError, address);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  /**
   * Opens a bidirectional stream of one of the stubs, with the token; `fail` turns an error the
   * stream ended with into GRID's (and moves on to the next controller when this one is gone).
   */
  duplex<Req, Res>(stub: object, method: DuplexMethod<Req, Res>): { call: ClientDuplexStream<Req, Res>; fail: (err: ServiceError) => Error } {
    const address = this.address;
    const call = method.call(stub, this.metadata(), {});
    return { call, fail: (err) => this.failed(err, address) };
  }

  /**
   * The controller ends a watch right after the terminal snapshot. That snapshot is handed on
   * only once the stream has ended, so a caller that stops at it does not cancel a call the
   * server has just closed: each such cancel reaches the server as a frame for a closed stream,
   * and after a thousand of them on one connection the server drops the connection.
   */
  private async *watchToEnd(id: string, signal?: AbortSignal): AsyncIterable<Execution> {
    const it = this.stream(this.controller, this.controller.watchExecution, { id }, signal)[Symbol.asyncIterator]();
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      if (TERMINAL_STATES.has(r.value.state)) {
        while (!(await it.next()).done) {
          // nothing follows a terminal snapshot; this only reads the end of the stream
        }
        yield r.value;
        return;
      }
      yield r.value;
    }
  }

  // ---- convenience wrappers for the common calls ----
  readonly ctl = {
    createJob: (r: Parameters<ControllerServiceClient['createJob']>[0]) => this.call(this.controller, this.controller.createJob, r),
    describeJob: (name: string) => this.call(this.controller, this.controller.describeJob, { name }),
    listJobs: () => this.call(this.controller, this.controller.listJobs, {}),
    deleteJob: (name: string) => this.call(this.controller, this.controller.deleteJob, { name }),
    whoAmI: () => this.call(this.controller, this.controller.whoAmI, {}),
    getHealth: () => this.call(this.controller, this.controller.getHealth, {}),
    issueNatsCredentials: (userPublicKey: string, days = 0) => this.call(this.controller, this.controller.issueNatsCredentials, { userPublicKey, days }),
    listExecutors: () => this.call(this.controller, this.controller.listExecutors, {}),
    describeExecutor: (idOrName: string) => this.call(this.controller, this.controller.describeExecutor, { idOrName }),
    removeExecutor: (idOrName: string) => this.call(this.controller, this.controller.removeExecutor, { idOrName }),
    /** Without an idempotency key, a call that fails on the way back may have started the execution: do not retry it blindly. */
    execute: (r: Omit<ExecuteRequest, 'idempotencyKey'> & { idempotencyKey?: string }) =>
      this.call(this.controller, this.controller.execute, { idempotencyKey: '', ...r }),
    getExecution: (id: string) => this.call(this.controller, this.controller.getExecution, { id }),
    listExecutions: (r: Partial<ListExecutionsRequest> = {}) =>
      this.call(this.controller, this.controller.listExecutions, { job: '', state: ExecutionState.EXECUTION_STATE_UNSPECIFIED, limit: 0, pageAfter: '', ...r }),
    cancelExecution: (id: string, reason = '') => this.call(this.controller, this.controller.cancelExecution, { id, reason }),
    /** Snapshots of the execution each time it changes; ends when it is terminal. */
    watchExecution: (id: string, signal?: AbortSignal): AsyncIterable<Execution> => this.watchToEnd(id, signal),
    /** Log chunks in order; with follow, until the execution is terminal. */
    getLogs: (r: { executionId: string; follow?: boolean; executor?: string; tailLines?: number; sinceMs?: number }, signal?: AbortSignal): AsyncIterable<LogChunk> =>
      this.stream(
        this.controller,
        this.controller.getLogs,
        { executionId: r.executionId, follow: !!r.follow, executor: r.executor ?? '', tailLines: r.tailLines, sinceMs: r.sinceMs ?? 0 },
        signal,
      ),
    /** The file's info (first message), then its content in chunks. */
    getFile: (name: string, signal?: AbortSignal): AsyncIterable<FileChunk> => this.stream(this.controller, this.controller.getFile, { name }, signal),
    listFiles: () => this.call(this.controller, this.controller.listFiles, {}),
    deleteFile: (name: string) => this.call(this.controller, this.controller.deleteFile, { name }),
  };

  /**
   * Uploads a file with PutFile: its info first (name; size and `sha256:<hex>` digest when known,
   * which the controller checks), then the chunks, with backpressure. Resolves with what the
   * controller stored. The deadline is at least 10 minutes (files may be up to 64 MiB).
   */
  putFile(info: { name: string; size?: number; digest?: string }, chunks: AsyncIterable<Uint8Array>, timeoutMs = Math.max(this.timeoutMs, 600_000)): Promise<FileInfo> {
    const address = this.address;
    return new Promise<FileInfo>((resolve, reject) => {
      let settled = false;
      let onSettled: () => void = () => {};
      const ended = new Promise<void>((r) => (onSettled = r));
      const call = this.controller.putFile(this.metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        settled = true;
        onSettled();
        if (err) reject(this.failed(err, address));
        else resolve(res);
      });
      // Write one message; wait for 'drain' when the buffer is full (or for the call to end).
      const send = async (msg: PutFileRequest) => {
        if (settled) return;
        if (!call.write(msg)) await Promise.race([new Promise<void>((r) => call.once('drain', () => r())), ended]);
      };
      (async () => {
        await send({ part: { $case: 'info', info: { name: info.name, size: info.size ?? 0, digest: info.digest ?? '', modifiedAtMs: 0 } } });
        for await (const c of chunks) {
          if (settled) break;
          await send({ part: { $case: 'chunk', chunk: Buffer.from(c.buffer, c.byteOffset, c.byteLength) } });
        }
        if (!settled) call.end();
      })().catch((err: unknown) => {
        call.cancel();
        if (!settled) reject(err);
        settled = true;
      });
    });
  }

  checkHealth(service = ''): Promise<HealthCheckResponse> {
    return this.call(this.health, this.health.check, { service });
  }

  close(): void {
    this.controller.close();
  }
}

export function toGridError(err: ServiceError, address: string, tls: ClientTls = {}) {
  const kind = err.metadata?.get(ERROR_KIND_METADATA_KEY)[0];
  if (err.code === GrpcCode.UNAVAILABLE && typeof kind !== 'string') {
    const why = (err.details || err.message).replace(/\s*Resolution note:\s*$/, '');
    const hint = tlsFailureHint(why, tls);
    if (hint) return new UnavailableError(`cannot connect to the controller at ${address}: ${hint}`, { cause: err, retryable: false });
    return new UnavailableError(`cannot reach the controller at ${address}: ${why}`, { cause: err });
  }
  // No answer before the deadline (the controller, or etcd behind it, is stalled or overloaded):
  // as for one that cannot be reached, the same call may work later.
  if (err.code === GrpcCode.DEADLINE_EXCEEDED && typeof kind !== 'string') {
    return new UnavailableError(`the controller at ${address} did not answer in time`, { cause: err });
  }
  return fromGrpcStatus(err.code, err.details || err.message, typeof kind === 'string' ? kind : undefined);
}
