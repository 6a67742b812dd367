// Thin typed layer over etcd3: JSON values, reads that return the mod revision, and
// compare-and-swap writes. Everything above this speaks in domain verbs (see store.ts).

import {
  ClientClosedError,
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCInvalidArgumentError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  type IKeyValue,
  type IOptions,
} from 'etcd3';
import { ConflictError, PermissionDeniedError, UnauthenticatedError, UnavailableError } from '../errors.js';
import { clientTls, diagnoseEtcd, NO_TLS, type EtcdTls } from './etcd-diagnose.js';
import type { WatchResumed } from './key-watch.js';

export type { EtcdTls } from './etcd-diagnose.js';
import type { Versioned } from './store.js';

/** `revision` is the key's etcd mod_revision. */
export type { Versioned } from './store.js';

export interface KvOptions {
  /** `https://…` endpoints are reached over TLS (all or none of them). */
  endpoints: string[];
  prefix: string;
  dialTimeoutMs?: number;
  /** CA and client certificate for `https://` endpoints; ignored for `http://` ones. */
  tls?: EtcdTls;
  /** etcd user and password, when etcd has authentication on. */
  auth?: { username: string; password: string };
  /** Told each time a watch (key-watch.ts) is read afresh after compaction or a lost connection. */
  onWatchResumed?: (e: WatchResumed) => void;
  /** How often watches are checked for silence (key-watch.ts); default WATCH_CHECK_MS. */
  watchCheckMs?: number;
  /** Keepalive ping interval and answer timeout on busy connections; default KEEPALIVE_MS (etcd refuses < 5 s). */
  keepaliveMs?: number;
}

/**
 * A connection with calls in flight is pinged this often, and dropped when a ping is not answered
 * within as long again: its calls fail as UNAVAILABLE and the next go over a new connection. A
 * connection can go silent with its socket open (a middlebox dropped the flow; Node's HTTP/2 over
 * TLS can stop reading its own socket for good while a write is pending, seen with 10,000
 * executors): without this, its calls waited forever and every lease lapsed.
 */
export const KEEPALIVE_MS = 10_000;

export class Kv {
  readonly client: Etcd3;
  readonly prefix: string;
  private readonly endpoints: string[];
  private readonly tls: EtcdTls;
  private readonly username: string;
  private readonly dialTimeoutMs: number;
  readonly onWatchResumed: ((e: WatchResumed) => void) | undefined;
  readonly watchCheckMs: number | undefined;
  private isClosed = false;

  constructor(opts: KvOptions) {
    this.onWatchResumed = opts.onWatchResumed;
    this.watchCheckMs = opts.watchCheckMs;
    this.endpoints = opts.endpoints;
    this.tls = opts.tls ?? NO_TLS;
    this.username = opts.auth?.username ?? '';
    this.dialTimeoutMs = opts.dialTimeoutMs ?? 5_000;
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: this.dialTimeoutMs,
      // Large records (a fan-out over thousands of executors) exceed gRPC's 4 MiB default.
      grpcOptions: {
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc.keepalive_time_ms': opts.keepaliveMs ?? KEEPALIVE_MS,
        'grpc.keepalive_timeout_ms': opts.keepaliveMs ?? KEEPALIVE_MS,
      },
      ...(opts.endpoints.some(isHttps) ? { credentials: credentials(this.tls) } : {}),
      ...(opts.auth ? { auth: { username: opts.auth.username, password: opts.auth.password } } : {}),
    });
    this.prefix = opts.prefix;
  }

  /**
   * The store's revision; when etcd cannot be used, one line saying why and what to configure
   * (the TLS set-up, the credentials, or the user's permissions). Run once at start.
   */
  async check(): Promise<number> {
    try {
      return await this.revision();
    } catch (err) {
      // Without a token etcd answers "user name is empty" as an invalid argument, which a plain
      // read can be for no other reason (a large write can: so only here).
      if (err instanceof GRPCInvalidArgumentError && !this.username) {
        throw new UnauthenticatedError(
          `etcd at ${this.endpoints.join(', ')} requires authentication; set etcd.username and etcd.password (or etcd.password_file), or a client certificate (etcd.tls.cert_file) whose common name is an etcd user`,
          { cause: err },
        );
      }
      if (!(err instanceof UnavailableError)) throw err;
      throw (await diagnoseEtcd(this.endpoints, this.tls, Math.min(this.dialTimeoutMs, 5_000))) ?? err;
    }
  }

  key(...parts: string[]): string {
    return this.prefix + parts.join('/');
  }

  /** The value at `key`, read as JSON unless `parse` reads it otherwise. */
  async get<T>(key: string, parse: (value: Buffer) => T = parseJson): Promise<Versioned<T> | undefined> {
    const res = await this.wrap(() => this.client.get(key).exec());
    const kv = res.kvs[0];
    return kv ? { value: parse(kv.value), revision: Number(kv.mod_revision) } : undefined;
  }

  async list<T>(prefix: string): Promise<Array<Versioned<T> & { key: string }>> {
    const { kvs } = await this.rangeAll(prefix);
    return kvs.map((kv) => ({ key: kv.key.toString(), ...decode<T>(kv) }));
  }

  /**
   * Every key under `prefix`, read in pages (a prefix holding thousands of records would exceed
   * a message size limit in one read) at one revision, so the pages form one snapshot: `atRevision`,
   * or the current one.
   */
  async rangeAll(prefix: string, pageSize = 500, atRevision = 0): Promise<{ kvs: IKeyValue[]; revision: number }> {
    const end = prefixEnd(Buffer.from(prefix));
    let key = Buffer.from(prefix);
    let revision = atRevision;
    const kvs: IKeyValue[] = [];
    for (;;) {
      const res = await this.wrap(() => this.client.kv.range({ key, range_end: end, limit: pageSize, ...(revision ? { revision } : {}) }));
      if (!revision) revision = Number(res.header.revision);
      kvs.push(...res.kvs);
      if (!res.more || res.kvs.length === 0) return { kvs, revision };
      key = Buffer.concat([res.kvs[res.kvs.length - 1]!.key, Buffer.from([0])]);
    }
  }

  /** Latest revision of the whole store, for resuming watches. */
  async revision(): Promise<number> {
    const res = await this.wrap(() => this.client.get(this.prefix + '\0').exec());
    return Number(res.header.revision);
  }

  /** Creates the key only if it does not exist; false when it does. `also` is written with it. */
  async create(key: string, value: unknown, leaseId?: string, also: Record<string, unknown> = {}): Promise<boolean> {
    const put = this.client.put(key).value(JSON.stringify(value));
    if (leaseId) put.lease(leaseId);
    const res = await this.wrap(() =>
      this.client
        .if(key, 'Create', '==', 0)
        .then(put, ...this.puts(also))
        .commit(),
    );
    return res.succeeded;
  }

  /** Writes the key only if its mod revision is still `revision`; false when it changed. `also` is written with it. */
  async swap(key: string, value: unknown, revision: number, also: Record<string, unknown> = {}): Promise<boolean> {
    const res = await this.wrap(() =>
      this.client
        .if(key, 'Mod', '==', revision)
        .then(this.client.put(key).value(JSON.stringify(value)), ...this.puts(also))
        .commit(),
    );
    return res.succeeded;
  }

  private puts(values: Record<string, unknown>) {
    return Object.entries(values).map(([k, v]) => this.client.put(k).value(JSON.stringify(v)));
  }

  /** Deletes the key only if its mod revision is still `revision`. */
  async deleteIf(key: string, revision: number): Promise<boolean> {
    const res = await this.wrap(() =>
      this.client.if(key, 'Mod', '==', revision).then(this.client.delete().key(key)).commit(),
    );
    return res.succeeded;
  }

  async delete(key: string): Promise<void> {
    await this.wrap(() => this.client.delete().key(key).exec());
  }

  /** Writes the key whatever it holds (last writer wins). */
  async put(key: string, value: unknown): Promise<void> {
    await this.wrap(() => this.client.put(key).value(JSON.stringify(value)).exec());
  }

  async deletePrefix(prefix: string): Promise<void> {
    await this.wrap(() => this.client.delete().prefix(prefix).exec());
  }

  /**
   * Read-modify-write with compare-and-swap, retried on conflict. `fn` returns the new value,
   * or undefined to leave the key alone. Returns what was written (or the unchanged value).
   */
  async update<T>(
    key: string,
    fn: (current: T | undefined) => T | undefined,
    what = 'record',
  ): Promise<T | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const cur = await this.get<T>(key);
      const next = fn(cur?.value);
      if (next === undefined) return cur?.value;
      const ok = cur ? await this.swap(key, next, cur.revision) : await this.create(key, next);
      if (ok) return next;
    }
    throw new ConflictError(what, key, 'gave up after 20 concurrent updates');
  }

  close(): void {
    this.isClosed = true;
    this.client.close();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * The UnavailableError for an etcd3 error that means etcd is not answering, else undefined.
   * For calls made on `client` directly, whose errors reach the gRPC layer unwrapped.
   */
  unavailable(err: unknown): UnavailableError | undefined {
    const at = `etcd at ${this.endpoints.join(', ')}`;
    if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || err instanceof ClientClosedError) {
      return new UnavailableError(`${at} is not answering; retry (${oneLine((err as Error).message)})`, { cause: err });
    }
    // After repeated failures etcd3's circuit breaker (cockatiel) refuses calls for a while
    // without trying; its error carries that library's own brand.
    if ((err as { isBrokenCircuitError?: unknown } | undefined)?.isBrokenCircuitError === true) {
      return new UnavailableError(`${at} is not answering; retry (it failed repeatedly, so calls to it pause for a few seconds)`, { cause: err });
    }
    return undefined;
  }

  /**
   * Turns etcd connection and credential failures into GRID's errors, each one line; others pass
   * through. For callers that build their own requests on `client` (the serialize locks).
   */
  async wrap<R>(fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err) {
      const unavailable = this.unavailable(err);
      if (unavailable) throw unavailable;
      const at = `etcd at ${this.endpoints.join(', ')}`;
      const user = JSON.stringify(this.username);
      if (err instanceof EtcdAuthenticationFailedError) {
        throw new UnauthenticatedError(
          `${at} refused user ${user}: wrong user name or password; set etcd.username to an etcd user and etcd.password (or etcd.password_file) to its password`,
          { cause: err },
        );
      }
      if (err instanceof EtcdPermissionDeniedError) {
        const who = this.username ? `user ${user}` : 'the user of the client certificate';
        throw new PermissionDeniedError(`${at} refused ${who} access to ${this.prefix}; grant it a role with readwrite permission on the key prefix ${this.prefix}`, {
          cause: err,
        });
      }
      throw err;
    }
  }
}

/**
 * Whether etcd refused a request for its size: over its --max-request-bytes ("etcdserver:
 * request is too large", an invalid argument), or over a gRPC message limit on either side
 * (resource exhausted). etcd3 gives the first no class of its own, so it is told by etcd's
 * fixed error text, here and nowhere else.
 */
export function isTooLarge(err: unknown): boolean {
  if (err instanceof GRPCResourceExhastedError) return true;
  return err instanceof GRPCInvalidArgumentError && err.message.includes('request is too large');
}

function isHttps(endpoint: string): boolean {
  return endpoint.startsWith('https://');
}

function credentials(tls: EtcdTls): NonNullable<IOptions['credentials']> {
  const files = clientTls(tls);
  return { rootCertificate: files.ca, ...(files.cert ? { certChain: files.cert, privateKey: files.key! } : {}) };
}

/** gRPC's messages may carry OpenSSL's multi-line reports; an error here is one line. */
function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ').trim();
}

/** The first key after every key that starts with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function parseJson<T>(value: Buffer): T {
  return JSON.parse(value.toString()) as T;
}

function decode<T>(kv: IKeyValue): Versioned<T> {
  return { value: parseJson<T>(kv.value), revision: Number(kv.mod_revision) };
}
