// The executor's configuration: defaults → JSON file → GRID_* environment → flags.
//
// Environment: GRID_ + the upper-cased top-level key, for every key except `kubernetes`:
// GRID_CONTROLLER, GRID_REGISTRATION_TOKEN (or GRID_REGISTRATION_TOKEN_FILE), GRID_NAME, GRID_GROUPS (a,b), GRID_LABELS (k=v,k2=v2),
// GRID_RUNNERS (host,kubernetes), GRID_CONCURRENCY, GRID_PING_INTERVAL_SECONDS, GRID_NATS_SERVERS,
// GRID_CA_FILE, GRID_PLAINTEXT, GRID_NATS_TLS_CA_FILE, GRID_NATS_TLS_CERT_FILE, GRID_NATS_TLS_KEY_FILE, GRID_STATE_FILE,
// GRID_WORK_DIR, GRID_RUN_AS, GRID_SHUTDOWN_GRACE_SECONDS, GRID_LOG_LEVEL, GRID_LOG_FORMAT,
// GRID_LOG_MAX_BYTES_PER_TASK, GRID_METRICS_ADDRESS. `ping_interval` (Octavius's name) is
// accepted in files and flags
// as another spelling of `ping_interval_seconds`; `registration_token_file` reads the token from
// a file. Relative paths in the file are relative to the file's folder; from the environment or
// flags, to the working directory.
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { absolutePath, dnsLabel, dnsName, hostPort, listenAddress, noDuplicates, nonEmpty, toDnsName } from './checks.js';
import { LOG_FORMATS, LOG_LEVELS, natsPathsRelativeTo, tlsFilesSchema, type LogFormat, type LogLevel } from './controller.js';
import type { NatsTls } from '../bus/connect.js';
import { readConfigFile } from './json.js';
import { envWithSecretFiles, inlineSecretFile } from './secret-files.js';
import { decodeLayer, envLayer, resolveLayers, t, type LoadOptions, type StringMap } from './schema.js';

export const RUNNERS = ['host', 'kubernetes'] as const;
export type RunnerName = (typeof RUNNERS)[number];
export const STATE_FILE_NAME = 'executor-state.json';

const MiB = 1024 * 1024;

/** host:port, or several separated by commas (controller replicas), none twice. */
function controllerList(v: string): string | undefined {
  const all = v.split(',').map((a) => a.trim());
  for (const a of all) {
    const bad = hostPort(a);
    if (bad) return all.length > 1 ? `${bad} (in the list ${JSON.stringify(v)}: host:port separated by commas)` : bad;
  }
  return noDuplicates(all);
}

export interface KubernetesConfig {
  /** Path of a kubeconfig; "" = in-cluster service account. */
  kube_config: string;
  /** "" = the kubeconfig's current context. */
  kube_context: string;
  default_namespace: string;
  /** "" = the namespace's default service account. */
  service_account_name: string;
  /** activeDeadlineSeconds of each Job; 0 = none (the task timeout still applies). */
  job_active_deadline_seconds: number;
  /** backoffLimit of each Job. */
  job_retries: number;
  job_pod_annotations: StringMap;
  /** Labels put on every Job and pod, besides GRID's own. */
  labels: StringMap;
  image_pull_secrets: string[];
  resources: { requests: StringMap; limits: StringMap };
  ttl_seconds_after_finished: number;
}

export interface ExecutorConfig {
  /**
   * The controller's gRPC address, host:port; or several replicas', separated by commas, which
   * the executor fails over between.
   */
  controller: string;
  /** Bootstrap token for `executor register`; "" when already registered. */
  registration_token: string;
  name: string;
  /** Groups this executor joins (besides the implicit "all"). */
  groups: string[];
  labels: StringMap;
  runners: RunnerName[];
  concurrency: number;
  ping_interval_seconds: number;
  /** NATS URLs to use; empty = the ones the controller hands back at registration. */
  nats_servers: string[];
  /** PEM file of the CA that signed the controller's certificate; "" = the system's CAs. */
  ca_file: string;
  /** Talk to the controller without TLS (only for a controller with tls.enabled false). */
  plaintext: boolean;
  /** TLS to NATS: the CA to verify the server with, and a client certificate if it asks. */
  nats_tls: NatsTls;
  /** Where the executor id and secret are kept after registration; absolute after loading. */
  state_file: string;
  work_dir: string;
  /**
   * Host tasks run as this user ("name", "uid" or "uid:gid") instead of the executor's own; needs
   * the executor to run as root. "" = as the executor's user (tasks can then read its state file).
   */
  run_as: string;
  shutdown_grace_seconds: number;
  log_level: LogLevel;
  /** The process's own log lines: text, or one JSON object a line. */
  log_format: LogFormat;
  log_max_bytes_per_task: number;
  /** host:port to serve /metrics, /livez and /readyz on (plain HTTP, no token); "" = none. */
  metrics_address: string;
  kubernetes: KubernetesConfig;
}

const notNamespace = (v: string): string | undefined => (dnsLabel(v) ? `${JSON.stringify(v)} must be a Kubernetes namespace name (a DNS label)` : undefined);

export const executorSchema = {
  controller: t.string({ default: '127.0.0.1:7070', check: controllerList }),
  registration_token: t.string(),
  name: t.string({ check: dnsName }),
  groups: t.list({ each: dnsLabel, check: noDuplicates }),
  labels: t.map(),
  runners: t.list({
    values: RUNNERS,
    default: ['host'],
    check: (v) => (v.length === 0 ? `must name at least one runner: ${RUNNERS.join(', ')}` : noDuplicates(v)),
  }),
  concurrency: t.int({ default: 4, min: 1, max: 1024 }),
  ping_interval_seconds: t.int({ default: 10, min: 1, aliases: ['ping_interval'] }),
  nats_servers: t.list({ each: nonEmpty, check: noDuplicates }),
  ca_file: t.string(),
  plaintext: t.bool({ default: false }),
  nats_tls: tlsFilesSchema('GRID_NATS_TLS'),
  state_file: t.string({ check: nonEmpty }),
  work_dir: t.string({ check: nonEmpty }),
  run_as: t.string({ check: (v) => (v === '' || /^[a-z_][a-z0-9_-]*$|^\d+(:\d+)?$/.test(v) ? undefined : `${JSON.stringify(v)} must be a user name, a uid, or uid:gid`) }),
  shutdown_grace_seconds: t.int({ default: 30, min: 0 }),
  log_level: t.enum(LOG_LEVELS, { default: 'info' }),
  log_format: t.enum(LOG_FORMATS, { default: 'text' }),
  log_max_bytes_per_task: t.int({ default: 10 * MiB, min: 1024 }),
  metrics_address: t.string({ check: (v) => (v === '' ? undefined : listenAddress(v)) }),
  kubernetes: t.object({
    kube_config: t.string(),
    kube_context: t.string(),
    default_namespace: t.string({ default: 'default', check: notNamespace }),
    service_account_name: t.string({ check: (v) => (v === '' ? undefined : dnsName(v)) }),
    job_active_deadline_seconds: t.int({ default: 0, min: 0 }),
    job_retries: t.int({ default: 0, min: 0, max: 100 }),
    job_pod_annotations: t.map(),
    labels: t.map(),
    image_pull_secrets: t.list({ each: dnsName, check: noDuplicates }),
    resources: t.object({ requests: t.map(), limits: t.map() }),
    ttl_seconds_after_finished: t.int({ default: 3600, min: 0 }),
  }),
};

/** Paths the loader makes absolute; in a file they are relative to the file's folder. */
const PATH_KEYS = ['state_file', 'work_dir', 'ca_file'] as const;

export function loadExecutorConfig(opts: LoadOptions<ExecutorConfig> = {}): ExecutorConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file === undefined ? undefined : absolutePath(opts.file, cwd);
  const computed = {
    name: toDnsName(hostname()),
    state_file: file === undefined ? join(cwd, '.grid', STATE_FILE_NAME) : join(dirname(file), STATE_FILE_NAME),
    work_dir: join(tmpdir(), 'grid-work'),
  };
  let fileLayer: Record<string, unknown> = {};
  if (file !== undefined) {
    const raw = readConfigFile(file);
    inlineSecretFile(raw, 'registration_token', '', dirname(file));
    fileLayer = decodeLayer(executorSchema, raw, 'file');
    for (const k of PATH_KEYS) if (typeof fileLayer[k] === 'string') fileLayer[k] = absolutePath(fileLayer[k], dirname(file));
    natsPathsRelativeTo({ tls: fileLayer.nats_tls as Partial<NatsTls> | undefined }, dirname(file));
    const k8s = fileLayer.kubernetes as { kube_config?: string } | undefined;
    if (k8s?.kube_config) k8s.kube_config = absolutePath(k8s.kube_config, dirname(file));
  }
  const cfg: ExecutorConfig = resolveLayers(
    executorSchema,
    computed,
    fileLayer,
    envLayer(executorSchema, envWithSecretFiles(env, ['GRID_REGISTRATION_TOKEN'], cwd), 'GRID_'),
    decodeLayer(executorSchema, opts.flags, 'flags'),
  );
  for (const k of PATH_KEYS) if (cfg[k]) cfg[k] = absolutePath(cfg[k], cwd);
  natsPathsRelativeTo({ tls: cfg.nats_tls }, cwd);
  cfg.kubernetes.kube_config = absolutePath(cfg.kubernetes.kube_config, cwd);
  return cfg;
}
