// Builds the controller's use-cases from its config and backends (etcd, NATS), and starts what
// runs beside them (dispatcher, recorder, sweeper, retention, expiry). Transport-free: the front
// doors (doors/) are handed what this returns. Each thing started is handed to `cleanup`, which
// the caller runs newest first on close.

import { readFileSync } from 'node:fs';
import type { NatsConnection } from '@nats-io/nats-core';
import { ensureControllerConsumers } from '../bus/consumers.js';
import { natsUnavailable, type NatsTls } from '../bus/connect.js';
import type { Bus } from '../bus/bus.js';
import { NatsBus } from '../bus/nats-bus.js';
import type { ControllerConfig, RegistrationToken } from '../config/controller.js';
import type { GridError } from '../errors.js';
import { EtcdExecutionStore } from '../store/etcd-executions.js';
import { EtcdExecutorStore } from '../store/etcd-executors.js';
import { EtcdJobStore } from '../store/etcd-jobs.js';
import { Defragmenter } from '../store/etcd-maintenance.js';
import type { Kv } from '../store/kv.js';
import { Leases } from '../store/leases.js';
import type { ControllerTls } from '../tls/setup.js';
import type { Logger } from '../util/log.js';
import { AuditLog, type AuditSink } from './audit.js';
import { Authenticator, type TokenSpec } from './auth.js';
import { Dispatcher } from './dispatcher.js';
import { EventService } from './events.js';
import { ExecutionService } from './executions.js';
import { ExecutorCertificates } from './executor-certs.js';
import { ExecutorRegistry } from './executors.js';
import { LoopLag } from '../util/loop-lag.js';
import { ExpiryWatcher } from './expiry.js';
import { FileService } from './files.js';
import { BackendHealth } from './health.js';
import { ControllerInstances } from './instances.js';
import { JobPublisher } from './job-publisher.js';
import { JobService } from './jobs.js';
import { LockService } from './locks.js';
import { LogService } from './logs.js';
import { ControllerMetrics } from './metrics.js';
import type { NatsAccess } from './nats-access.js';
import { NatsCredentialService } from './nats-credentials.js';
import { Readiness } from './readiness.js';
import { Recorder } from './recorder.js';
import { Retention } from './retention.js';
import { SecretBox } from './secrets.js';
import { StreamQuota } from './stream-quota.js';
import { Sweeper } from './sweeper.js';
import type { ControllerUseCases, ExecutorUseCases } from './use-cases.js';

export interface Backends {
  cfg: ControllerConfig;
  log: Logger;
  kv: Kv;
  nc: NatsConnection;
  natsAccess: NatsAccess;
  natsTls: NatsTls;
  natsServers: string[];
  etcdEndpoints: string[];
  /** GRID runs its own etcd and nats-server (the embedded default). */
  embeddedServers: boolean;
  /** The CA and server certificate; undefined when gRPC runs without TLS. */
  tls?: ControllerTls;
  tokens: TokenSpec[];
  registrationTokens: RegistrationToken[];
  auditSink: AuditSink;
}

/** What every front door is handed: the use-cases, and how to authenticate, audit and word errors. */
export interface Wired {
  controller: ControllerUseCases;
  executor: ExecutorUseCases;
  /** The bus the use-cases run over: the NATS intake door takes its requests from it. */
  bus: Bus;
  auth: Authenticator;
  audit: AuditLog;
  /** GRID's error for a backend failure that reached a door as a client library's error. */
  backendError: (err: unknown) => GridError | undefined;
  /** This process's Prometheus metrics (the HTTP door's /metrics). */
  metrics: ControllerMetrics;
  /** Whether etcd and NATS answer (the HTTP door's /readyz, the gRPC health service). */
  readiness: Readiness;
}

export async function wireUseCases(b: Backends, cleanup: (name: string, run: () => Promise<void> | void) => void): Promise<Wired> {
  const { cfg, log, kv, nc, natsAccess, tls, natsTls } = b;
  const auth = new Authenticator(cfg.auth, b.tokens);

  const jobStore = new EtcdJobStore(kv);
  await jobStore.startCache();
  cleanup('job cache', () => jobStore.closeCache());
  const jobs = new JobService(jobStore, cfg.limits);
  const leases = new Leases(kv);
  cleanup('lease keep-alive stream', () => leases.close());
  const executorStore = new EtcdExecutorStore(kv);
  await executorStore.startCache();
  cleanup('executor cache', () => executorStore.closeCache());
  const bus = new NatsBus(nc);
  const metrics = new ControllerMetrics({ executors: () => executorStore.all(), processMetrics: true });
  const natsAdvertise = cfg.nats.advertise.length ? cfg.nats.advertise : b.natsServers;
  const natsCaPem = natsTls.ca_file ? readFileSync(natsTls.ca_file, 'utf8') : '';
  const executors = new ExecutorRegistry(executorStore, leases, bus, natsAccess, {
    registrationTokens: b.registrationTokens,
    pingDeadlineSeconds: cfg.executor_ping_deadline_seconds,
    natsAdvertise,
    ...(tls ? { certificates: new ExecutorCertificates(tls.ca, tls.executorCertDays) } : {}),
    ...(natsCaPem ? { natsCaPem } : {}),
    limits: cfg.limits,
    onHeartbeat: (result) => metrics.heartbeat(result),
    registrationConcurrency: cfg.registration_concurrency,
  }, log.named('executors'));
  const embeddedEtcd = cfg.etcd.endpoints.length === 0;
  if (!cfg.secrets_key && !embeddedEtcd) {
    log.warn('no secrets_key configured: using a key generated in data_dir; replicas must share one key to run jobs with secrets', { data_dir: cfg.data_dir });
  }
  const box = cfg.secrets_key ? SecretBox.fromBase64(cfg.secrets_key) : await SecretBox.forDataDir(cfg.data_dir);
  const instances = new ControllerInstances(kv, log.named('instances'));
  await instances.start();
  cleanup('controller liveness lease', () => instances.stop());
  const instance = instances.id;
  const executionStore = new EtcdExecutionStore(kv, {
    recordBytes: cfg.limits.record_bytes,
    onWritten: (prev, next) => metrics.recordWritten(prev, next),
  });
  const streams = new StreamQuota(cfg.limits);
  const publisher = new JobPublisher({ queue: bus, jobs: jobStore });
  const files = new FileService({ nc, kv });
  await executionStore.backfillIndexes(log.named('executions'));
  const retention = new Retention({
    store: executionStore,
    policy: { maxAgeMs: cfg.execution_retention_hours * 3600_000, maxFinished: cfg.execution_retention_max },
    log: log.named('retention'),
  });
  const executions = new ExecutionService({
    store: executionStore, jobs: jobStore, executors: executorStore, registry: executors, bus, box, publisher, instance, retention, log: log.named('executions'),
    limits: cfg.limits, streams,
    fileDigests: (names) => files.recordedDigests(names),
  });
  const logs = new LogService({
    logs: bus, store: executionStore, executors: executorStore, log: log.named('logs'),
    authorizeVisible: (p, x, what) => executions.authorizeVisible(p, x, what),
    streams,
  });

  await ensureControllerConsumers(nc);
  const dispatcher = new Dispatcher({ bus, store: executionStore, jobs: jobStore, executors: executorStore, publisher, instance, log: log.named('dispatcher') });
  await dispatcher.start();
  cleanup('dispatcher', () => dispatcher.stop());
  const recorder = new Recorder({ bus, store: executionStore, publisher, instance, log: log.named('recorder'), executors: executorStore });
  await recorder.start();
  cleanup('recorder', () => recorder.stop());
  const sweeper = new Sweeper({ store: executionStore, executions, executors: executorStore, publisher, instances, log: log.named('sweeper') });
  sweeper.start();
  retention.start();
  cleanup('retention', () => retention.stop());
  // The embedded etcd is GRID's own: defragment it when it is mostly free pages. An external
  // one is its operators' (see the README).
  if (b.embeddedServers) {
    const defrag = new Defragmenter({ kv, log: log.named('etcd') });
    defrag.start();
    cleanup('etcd defragmentation', () => defrag.stop());
  }
  const health = new BackendHealth({ kv, nc, store: executionStore, retention, etcdEndpoints: b.etcdEndpoints, natsServers: b.natsServers });
  cleanup('sweeper', () => sweeper.stop());
  const readiness = new Readiness({
    probes: { etcd: () => health.pingEtcd(), nats: () => health.pingNats() },
    onProbe: (backend, seconds) => metrics.backendProbed(backend, seconds),
    log: log.named('readiness'),
  });
  await readiness.start();
  cleanup('readiness probes', () => readiness.stop());

  const expiry = new ExpiryWatcher(executorStore, log.named('expiry'), Date.now, cfg.executor_ping_deadline_seconds * 1000, (id) => executors.lastSeen(id));
  expiry.onExpired((e) => sweeper.executorExpired(e));
  executors.onRemoved = (e) => sweeper.executorExpired(e, 'was removed');
  await expiry.start();
  const stopTelling = readiness.onBackendChange((backend, up) => backend === 'etcd' && expiry.storeAnswers(up));
  // A controller seconds behind reads heartbeats late: lapses wait until it runs on time again.
  const expiryLog = log.named('expiry');
  const lag = new LoopLag({
    onChange: (late, behindMs) => {
      if (late) expiryLog.warn('this controller runs late: lapsed executor leases wait until it runs on time again', { behind_ms: Math.round(behindMs) });
      else expiryLog.info('this controller runs on time again: lapsed executor leases are looked at');
      expiry.runsLate(late);
    },
  });
  lag.start();
  cleanup('expiry watcher', () => {
    lag.stop();
    stopTelling();
    return expiry.stop();
  });
  const audit = new AuditLog(b.auditSink, log.named('audit'), (id) => executors.nameOf(id));
  const locks = new LockService({ kv, leases, ttlSeconds: cfg.lock_ttl_seconds });
  const natsServers = b.natsServers;
  const events = new EventService({ kv, store: executionStore, registry: executors, nodeGroups: () => executions.nodeGroups(), streams });
  const natsCredentials = new NatsCredentialService({ access: natsAccess, servers: natsAdvertise, caPem: natsCaPem });
  return {
    controller: { jobs, executors, executions, logs, files, events, health, natsCredentials },
    executor: { registry: executors, executions, files, locks },
    bus,
    auth,
    audit,
    backendError: (err) => kv.unavailable(err) ?? natsUnavailable(err, natsServers),
    metrics,
    readiness,
  };
}
