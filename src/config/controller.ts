// The controller's configuration: defaults → JSON file → GRID_* environment → flags.
//
// Environment: GRID_ + the upper-cased key for every top-level key (GRID_GRPC_ADDRESS, GRID_HTTP_ADDRESS,
// GRID_DATA_DIR, GRID_AUTH, GRID_LOG_LEVEL, GRID_LOG_FORMAT, GRID_LOG_RETENTION_HOURS, GRID_LOG_MAX_BYTES,
// GRID_EVENT_RETENTION_HOURS, GRID_AUDIT_LOG), except GRID_EXECUTOR_PING_DEADLINE (seconds); nested:
// GRID_ETCD_ENDPOINTS, GRID_ETCD_PREFIX, GRID_ETCD_TLS_CA_FILE, GRID_ETCD_TLS_CERT_FILE,
// GRID_ETCD_TLS_KEY_FILE, GRID_ETCD_USERNAME, GRID_ETCD_PASSWORD, GRID_ETCD_PASSWORD_FILE,
// GRID_NATS_SERVERS, GRID_NATS_ADVERTISE (comma-separated),
// GRID_NATS_AUTH, GRID_NATS_AUTH_DIR, GRID_NATS_TLS_CA_FILE, GRID_NATS_TLS_CERT_FILE, GRID_NATS_TLS_KEY_FILE,
// GRID_TLS_ENABLED, GRID_TLS_CERT_FILE, GRID_TLS_KEY_FILE, GRID_TLS_CA_CERT_FILE, GRID_TLS_CA_KEY_FILE,
// GRID_TLS_SERVER_NAMES, and GRID_LIMITS_<KEY> for each key of `limits` (GRID_LIMITS_ARG_BYTES, …).
// GRID_ADMIN_TOKEN adds an admin API token named "env-admin"; GRID_REGISTRATION_TOKEN adds one
// executor bootstrap token. Secrets can be read from files instead: `secrets_key_file`,
// `tokens[].token_file`, `registration_tokens[].token_file`, and GRID_SECRETS_KEY_FILE,
// GRID_ADMIN_TOKEN_FILE, GRID_REGISTRATION_TOKEN_FILE. Relative paths in the file are relative
// to the file's folder; from the environment or flags, to the working directory.
import { dirname, join } from 'node:path';
import { ConfigError } from '../errors.js';
import { absolutePath, dnsLabel, listenAddress, noDuplicates, nonEmpty } from './checks.js';
import { readConfigFile } from './json.js';
import { envWithSecretFiles, inlineSecretFile, inlineSecretFiles, secretFromFile } from './secret-files.js';
import { decodeLayer, envLayer, resolveLayers, t, type LoadOptions } from './schema.js';
import type { NatsTls } from '../bus/connect.js';
import { LIMIT_DEFAULTS, type LimitKey, type Limits } from '../domain/limits.js';
import type { EtcdTls } from '../store/kv.js';
import { LOG_FORMATS, type LogFormat } from '../util/log.js';

/** CA, client certificate and key for a TLS connection to NATS or etcd (PEM files; "" = not used). */
export function tlsFilesSchema(envPrefix: string) {
  return t.object({
    ca_file: t.string({ env: `${envPrefix}_CA_FILE` }),
    cert_file: t.string({ env: `${envPrefix}_CERT_FILE` }),
    key_file: t.string({ env: `${envPrefix}_KEY_FILE` }),
  });
}

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export { LOG_FORMATS, type LogFormat } from '../util/log.js';
export const ROLES = ['admin', 'operator', 'viewer', 'metrics'] as const;
export type Role = (typeof ROLES)[number];
export const MIN_TOKEN_LENGTH = 16;

const MiB = 1024 * 1024;

export interface RegistrationToken {
  /** Shown in the audit log as who registered; "" = its place in the list. */
  name?: string;
  token: string;
  /** Groups an executor registering with this token may join; empty = any. */
  groups: string[];
}

export interface ApiToken {
  /** Who holds it; shown as the requester of what they do. */
  name: string;
  token: string;
  role: Role;
  /** Executor groups this token may target; empty = all. */
  groups: string[];
}

export interface GrpcTlsConfig {
  /** false serves gRPC in plaintext: only for a controller behind a TLS-terminating proxy, or tests. */
  enabled: boolean;
  /** The server's certificate and key (PEM); "" = issued by GRID's CA for `server_names`. */
  cert_file: string;
  key_file: string;
  /** GRID's CA, which issues executors' client certificates; "" = `<data_dir>/tls/ca.{crt,key}`, made on first start. */
  ca_cert_file: string;
  ca_key_file: string;
  /** Names on a certificate GRID issues itself; empty = localhost, 127.0.0.1, ::1, this host's name and grpc_address's host. */
  server_names: string[];
  /** Life of an executor's client certificate; it renews it after two thirds of it. */
  executor_cert_days: number;
}

export interface ControllerConfig {
  /** Where the gRPC server listens (clients and executors). */
  grpc_address: string;
  /** Where the HTTP/JSON API listens (same tokens and TLS as gRPC); "" = no HTTP door. */
  http_address: string;
  /** Data of the embedded nats-server and etcd; always absolute after loading. */
  data_dir: string;
  /**
   * `https://` endpoints are reached over TLS with `tls`; `username` and `password` (or the
   * file holding it, read at load) when etcd has authentication on.
   */
  etcd: {
    endpoints: string[];
    prefix: string;
    dial_timeout_ms: number;
    tls: EtcdTls;
    username: string;
    password: string;
    password_file: string;
  };
  /**
   * `servers` empty = embedded (see isEmbedded). `advertise`: the NATS URLs handed to executors at
   * registration; defaults to `servers` (empty when embedded: hand out the embedded server's URL).
   */
  nats: {
    servers: string[];
    advertise: string[];
    /**
     * `jwt`: every NATS connection is a GRID-minted user (decentralized JWT auth); `none` only
     * for a NATS without authentication, and must be asked for.
     */
    auth: 'jwt' | 'none';
    /** The operator and account keys (controller nats-config); "" = `<data_dir>/nats-auth`. */
    auth_dir: string;
    tls: NatsTls;
    /**
     * How many servers of the NATS cluster keep each stream (its consumers with it) and the files
     * bucket: 1 to 5, odd (3 survives one server down, 5 two). 1 on a single server.
     */
    replicas: number;
  };
  /** TLS of the gRPC server, and the CA that issues executors' client certificates. */
  tls: GrpcTlsConfig;
  auth: 'tokens' | 'none';
  tokens: ApiToken[];
  /**
   * Bootstrap tokens an executor presents to register, each with the groups an executor
   * registering with it may join (empty = any). A plain string is a token without groups.
   */
  registration_tokens: RegistrationToken[];
  /** An executor silent this long is EXPIRED (its etcd lease TTL). */
  executor_ping_deadline_seconds: number;
  /**
   * Key that seals secret argument values stored on executions: 32 random bytes, base64. Every
   * replica needs the same one. Empty = generated in data_dir (fine for one controller).
   */
  secrets_key: string;
  /** Serialized jobs: a lock whose holder stops refreshing it lapses after this long. */
  lock_ttl_seconds: number;
  log_level: LogLevel;
  /** The process's own log lines: text, or one JSON object a line. */
  log_format: LogFormat;
  /** The V8 heap grows at most this many percent past the live set between full collections; 0 = V8's own heuristics. */
  heap_growth_percent: number;
  /** Registrations worked on at once; the rest wait their turn, so heartbeats are not starved when a fleet starts together. */
  registration_concurrency: number;
  /**
   * Where the audit log (one JSON line per mutating request) is appended: a file path, or "-"
   * for stdout. Always absolute or "-" after loading; "" in a layer = `<data_dir>/audit.log`.
   */
  audit_log: string;
  /** Finished executions are deleted this long after they were created… */
  execution_retention_hours: number;
  /** …and beyond this many, oldest first. */
  execution_retention_max: number;
  /** Log lines in GRID_LOGS are kept this long; 0 in a layer = as long as the executions. */
  log_retention_hours: number;
  log_max_bytes: number;
  event_retention_hours: number;
  /** What one request may make the controller hold, store or send (see domain/limits.ts). */
  limits: Limits;
}

/** A `limits` key: a whole number from `min` (to `max`), GRID_LIMITS_<KEY> in the environment. */
const limit = (key: LimitKey, min: number, max?: number) =>
  t.int({ default: LIMIT_DEFAULTS[key], min, ...(max !== undefined ? { max } : {}), env: `GRID_LIMITS_${key.toUpperCase()}` });

export const controllerSchema = {
  grpc_address: t.string({ default: '127.0.0.1:7070', check: listenAddress }),
  data_dir: t.string({ default: './.grid', check: nonEmpty }),
  http_address: t.string({ default: '127.0.0.1:7080', check: (v) => (v === '' ? undefined : listenAddress(v)) }),
  etcd: t.object({
    endpoints: t.list({ env: 'GRID_ETCD_ENDPOINTS', each: nonEmpty, check: noDuplicates }),
    prefix: t.string({
      default: '/grid/',
      env: 'GRID_ETCD_PREFIX',
      check: (v) => (v.length >= 2 && v.startsWith('/') && v.endsWith('/') ? undefined : `${JSON.stringify(v)} must start and end with "/", e.g. "/grid/"`),
    }),
    dial_timeout_ms: t.int({ default: 5000, min: 100 }),
    tls: tlsFilesSchema('GRID_ETCD_TLS'),
    username: t.string({ env: 'GRID_ETCD_USERNAME' }),
    password: t.string({ env: 'GRID_ETCD_PASSWORD' }),
    password_file: t.string({ env: 'GRID_ETCD_PASSWORD_FILE' }),
  }),
  nats: t.object({
    servers: t.list({ env: 'GRID_NATS_SERVERS', each: nonEmpty, check: noDuplicates }),
    advertise: t.list({ env: 'GRID_NATS_ADVERTISE', each: nonEmpty }),
    auth: t.enum(['jwt', 'none'], { default: 'jwt', env: 'GRID_NATS_AUTH' }),
    auth_dir: t.string({ env: 'GRID_NATS_AUTH_DIR' }),
    tls: tlsFilesSchema('GRID_NATS_TLS'),
    replicas: t.int({ default: 1, min: 1, max: 5, env: 'GRID_NATS_REPLICAS' }),
  }),
  tls: t.object({
    enabled: t.bool({ default: true, env: 'GRID_TLS_ENABLED' }),
    cert_file: t.string({ env: 'GRID_TLS_CERT_FILE' }),
    key_file: t.string({ env: 'GRID_TLS_KEY_FILE' }),
    ca_cert_file: t.string({ env: 'GRID_TLS_CA_CERT_FILE' }),
    ca_key_file: t.string({ env: 'GRID_TLS_CA_KEY_FILE' }),
    server_names: t.list({ env: 'GRID_TLS_SERVER_NAMES', each: nonEmpty, check: noDuplicates }),
    executor_cert_days: t.int({ default: 30, min: 1, max: 3650 }),
  }),
  auth: t.enum(['tokens', 'none'], { default: 'tokens' }),
  tokens: t.objects({
    name: t.string({ required: true, check: nonEmpty }),
    token: t.string({ required: true, minLength: MIN_TOKEN_LENGTH }),
    role: t.enum(ROLES, { required: true }),
    groups: t.list({ each: dnsLabel }),
  }),
  registration_tokens: t.objects({
    name: t.string(),
    token: t.string({ required: true, check: nonEmpty }),
    groups: t.list({ each: dnsLabel, check: noDuplicates }),
  }),
  executor_ping_deadline_seconds: t.int({ default: 30, min: 2, env: 'GRID_EXECUTOR_PING_DEADLINE' }),
  secrets_key: t.string({ env: 'GRID_SECRETS_KEY' }),
  lock_ttl_seconds: t.int({ default: 30, min: 2, max: 3600 }),
  log_level: t.enum(LOG_LEVELS, { default: 'info' }),
  log_format: t.enum(LOG_FORMATS, { default: 'text' }),
  heap_growth_percent: t.int({ default: 30, min: 0, max: 1000, env: 'GRID_HEAP_GROWTH_PERCENT' }),
  registration_concurrency: t.int({ default: 16, min: 1, max: 1024, env: 'GRID_REGISTRATION_CONCURRENCY' }),
  audit_log: t.string(),
  execution_retention_hours: t.int({ default: 168, min: 1, env: 'GRID_EXECUTION_RETENTION_HOURS' }),
  execution_retention_max: t.int({ default: 100_000, min: 1, env: 'GRID_EXECUTION_RETENTION_MAX' }),
  log_retention_hours: t.int({ default: 0, min: 0 }),
  log_max_bytes: t.int({ default: 1024 * MiB, min: MiB }),
  event_retention_hours: t.int({ default: 168, min: 1 }),
  limits: t.object({
    arg_bytes: limit('arg_bytes', 1),
    execution_args_bytes: limit('execution_args_bytes', 1),
    definition_bytes: limit('definition_bytes', 1024),
    tasks_per_execution: limit('tasks_per_execution', 1),
    streams_per_token: limit('streams_per_token', 1),
    groups_per_executor: limit('groups_per_executor', 1),
    // Below etcd's client's own message limit (kv.ts), with room for the rest of a transaction.
    record_bytes: limit('record_bytes', 64 * 1024, 32 * MiB),
    // NATS's default max_payload is 1 MiB.
    job_message_bytes: limit('job_message_bytes', 1024, MiB),
    jobs_stream_bytes: limit('jobs_stream_bytes', MiB),
    jobs_stream_messages: limit('jobs_stream_messages', 1000),
  }),
};

/** Secrets given in the environment may come from a file instead: `<NAME>_FILE`. */
const SECRET_ENV = ['GRID_SECRETS_KEY', 'GRID_ADMIN_TOKEN', 'GRID_REGISTRATION_TOKEN'] as const;

export function loadControllerConfig(opts: LoadOptions<ControllerConfig> = {}): ControllerConfig {
  const cwd = opts.cwd ?? process.cwd();
  const env = envWithSecretFiles(opts.env ?? process.env, SECRET_ENV, cwd);
  const file = opts.file === undefined ? undefined : absolutePath(opts.file, cwd);
  const fileLayer = file === undefined ? {} : decodeLayer(controllerSchema, withSecretFiles(readConfigFile(file), dirname(file)), 'file');
  if (file !== undefined && typeof fileLayer.data_dir === 'string') {
    fileLayer.data_dir = absolutePath(fileLayer.data_dir, dirname(file));
  }
  if (file !== undefined) {
    natsPathsRelativeTo(fileLayer.nats as NatsPaths | undefined, dirname(file));
    grpcTlsPathsRelativeTo(fileLayer.tls as Partial<GrpcTlsConfig> | undefined, dirname(file));
    etcdPathsRelativeTo(fileLayer.etcd as EtcdPaths | undefined, dirname(file));
  }
  if (file !== undefined && typeof fileLayer.audit_log === 'string') fileLayer.audit_log = auditPath(fileLayer.audit_log, dirname(file));
  const cfg: ControllerConfig = resolveLayers(
    controllerSchema,
    fileLayer,
    envLayer(controllerSchema, env, 'GRID_'),
    decodeLayer(controllerSchema, opts.flags, 'flags'),
  );
  cfg.data_dir = absolutePath(cfg.data_dir, cwd);
  cfg.audit_log = cfg.audit_log === '' ? join(cfg.data_dir, 'audit.log') : auditPath(cfg.audit_log, cwd);
  natsPathsRelativeTo(cfg.nats, cwd);
  grpcTlsPathsRelativeTo(cfg.tls, cwd);
  if ((cfg.tls.cert_file === '') !== (cfg.tls.key_file === '')) throw new ConfigError(cfg.tls.cert_file ? 'tls.key_file' : 'tls.cert_file', 'missing; give the server certificate and its key together');
  if ((cfg.tls.ca_cert_file === '') !== (cfg.tls.ca_key_file === '')) throw new ConfigError(cfg.tls.ca_cert_file ? 'tls.ca_key_file' : 'tls.ca_cert_file', 'missing; give the CA certificate and its key together');
  etcdPathsRelativeTo(cfg.etcd, cwd);
  checkEtcd(cfg.etcd);
  if (cfg.nats.tls.cert_file !== '' && cfg.nats.tls.key_file === '') throw new ConfigError('nats.tls.key_file', 'missing; a client certificate needs its key');
  if (cfg.nats.advertise.length === 0) cfg.nats.advertise = [...cfg.nats.servers];
  // The logs of an execution last as long as the execution, unless set apart.
  if (cfg.log_retention_hours === 0) cfg.log_retention_hours = cfg.execution_retention_hours;

  const admin = env.GRID_ADMIN_TOKEN;
  if (admin) {
    if (admin.length < MIN_TOKEN_LENGTH) {
      throw new ConfigError('GRID_ADMIN_TOKEN', `must be at least ${MIN_TOKEN_LENGTH} characters long (got ${admin.length})`);
    }
    cfg.tokens.push({ name: 'env-admin', token: admin, role: 'admin', groups: [] });
  }
  const registration = env.GRID_REGISTRATION_TOKEN;
  if (registration && !cfg.registration_tokens.some((r) => r.token === registration)) cfg.registration_tokens.push({ token: registration, groups: [] });
  cfg.registration_tokens.forEach((r, i) => {
    const j = cfg.registration_tokens.findIndex((o) => o.token === r.token);
    if (j < i) throw new ConfigError(`registration_tokens[${i}].token`, `same token value as registration_tokens[${j}]; each token must be unique`);
  });

  checkTokens(cfg.tokens, admin ? cfg.tokens.length - 1 : -1);
  if ((cfg.etcd.endpoints.length === 0) !== (cfg.nats.servers.length === 0)) {
    throw new ConfigError('etcd.endpoints', 'set both etcd.endpoints and nats.servers, or neither for the embedded default');
  }
  if (cfg.nats.replicas > 1 && cfg.nats.servers.length === 0) {
    throw new ConfigError('nats.replicas', `${cfg.nats.replicas} needs a NATS cluster; the embedded nats-server is a single server, so use 1 or set nats.servers to the servers of a JetStream cluster`);
  }
  return cfg;
}

/** The `*_file` keys of a controller config file, read (relative to its folder `base`). */
function withSecretFiles(raw: Record<string, unknown>, base: string): unknown {
  const out = registrationTokenObjects(raw);
  inlineSecretFile(out, 'secrets_key', '', base);
  inlineSecretFiles(out, 'tokens', 'token', base);
  inlineSecretFiles(out, 'registration_tokens', 'token', base);
  return out;
}

/** `registration_tokens` entries given as plain strings are tokens without groups. */
function registrationTokenObjects(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  if (!Array.isArray(r.registration_tokens)) return raw;
  return { ...r, registration_tokens: r.registration_tokens.map((t) => (typeof t === 'string' ? { token: t } : t)) };
}

/** "-" is stdout; "" stays "" (the default under data_dir); anything else is a path. */
function auditPath(v: string, base: string): string {
  return v === '-' || v === '' ? v : absolutePath(v, base);
}

interface NatsPaths {
  auth_dir?: string;
  tls?: Partial<NatsTls>;
}

/** Paths under `nats` from a file are relative to its folder; the rest to the working directory. */
export function natsPathsRelativeTo(n: NatsPaths | undefined, base: string): void {
  if (!n) return;
  if (n.auth_dir) n.auth_dir = absolutePath(n.auth_dir, base);
  tlsPathsRelativeTo(n.tls, base);
}

interface EtcdPaths {
  password_file?: string;
  tls?: Partial<EtcdTls>;
}

function etcdPathsRelativeTo(e: EtcdPaths | undefined, base: string): void {
  if (!e) return;
  if (e.password_file) e.password_file = absolutePath(e.password_file, base);
  tlsPathsRelativeTo(e.tls, base);
}

function tlsPathsRelativeTo(tls: Partial<NatsTls> | undefined, base: string): void {
  for (const k of ['ca_file', 'cert_file', 'key_file'] as const) {
    const v = tls?.[k];
    if (v) tls![k] = absolutePath(v, base);
  }
}

function grpcTlsPathsRelativeTo(t: Partial<GrpcTlsConfig> | undefined, base: string): void {
  if (!t) return;
  for (const k of ['cert_file', 'key_file', 'ca_cert_file', 'ca_key_file'] as const) {
    const v = t[k];
    if (v) t[k] = absolutePath(v, base);
  }
}

/** TLS files that belong together, credentials that belong together, and endpoints that agree on TLS. */
function checkEtcd(e: ControllerConfig['etcd']): void {
  if (e.tls.cert_file !== '' && e.tls.key_file === '') throw new ConfigError('etcd.tls.key_file', 'missing; a client certificate (etcd.tls.cert_file) needs its key');
  if (e.tls.key_file !== '' && e.tls.cert_file === '') throw new ConfigError('etcd.tls.cert_file', 'missing; etcd.tls.key_file is the key of a client certificate, give that certificate too');
  const https = e.endpoints.filter((u) => u.startsWith('https://'));
  if (https.length > 0 && https.length < e.endpoints.length) {
    throw new ConfigError('etcd.endpoints', `${JSON.stringify(e.endpoints.find((u) => !u.startsWith('https://')))} is plaintext beside https:// endpoints; use https:// for all of them or none`);
  }
  const tlsSet = e.tls.ca_file !== '' || e.tls.cert_file !== '';
  if (tlsSet && e.endpoints.length > 0 && https.length === 0) {
    throw new ConfigError('etcd.endpoints', `${JSON.stringify(e.endpoints[0])} is plaintext but etcd.tls is set; use https:// endpoints to reach etcd over TLS`);
  }
  if (e.password !== '' && e.password_file !== '') {
    throw new ConfigError('etcd.password_file', 'given together with etcd.password; set only one of etcd.password and etcd.password_file');
  }
  if (e.password_file !== '') e.password = secretFromFile('etcd.password_file', e.password_file);
  if (e.password !== '' && e.username === '') throw new ConfigError('etcd.username', 'missing; etcd.password needs the etcd user it belongs to');
  if (e.username !== '' && e.password === '') {
    throw new ConfigError('etcd.password', `missing for etcd user ${JSON.stringify(e.username)}; set etcd.password or etcd.password_file`);
  }
}

/** Names and values must be unique; `fromEnv` is the index of the GRID_ADMIN_TOKEN entry (or -1). */
function checkTokens(tokens: ApiToken[], fromEnv: number): void {
  const key = (i: number, field: string): string => (i === fromEnv ? 'GRID_ADMIN_TOKEN' : `tokens[${i}].${field}`);
  tokens.forEach((tok, i) => {
    const j = tokens.findIndex((o) => o.name === tok.name);
    if (j < i) throw new ConfigError(key(i, 'name'), `duplicate token name ${JSON.stringify(tok.name)} (also tokens[${j}]); names must be unique`);
    const k = tokens.findIndex((o) => o.token === tok.token);
    if (k < i) throw new ConfigError(key(i, 'token'), `same token value as tokens[${k}] (${JSON.stringify(tokens[k]!.name)}); each token must be unique`);
  });
}

/**
 * True when the controller runs its own nats-server and etcd. Running against external servers
 * needs both etcd.endpoints and nats.servers; the loader rejects giving only one, so for a loaded
 * config the two are empty together or set together.
 */
export function isEmbedded(cfg: Pick<ControllerConfig, 'etcd' | 'nats'>): boolean {
  return cfg.etcd.endpoints.length === 0 || cfg.nats.servers.length === 0;
}
