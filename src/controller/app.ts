// Wires a controller together from its config — embedded servers when none are configured,
// etcd, NATS streams, use-cases, gRPC — and takes it apart again in order.

import { readFileSync } from 'node:fs';
import { Server } from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream } from '@nats-io/jetstream';
import { ensureControllerConsumers } from '../bus/consumers.js';
import { ensureStreams, type ReplicaChange } from '../bus/setup.js';
import { connectBus, natsUnavailable } from '../bus/connect.js';
import type { ControllerConfig, RegistrationToken } from '../config/controller.js';
import { startEmbeddedCluster, type EmbeddedServerName, type SupervisionEvent } from '../embedded/index.js';
import { ControllerServiceService } from '../gen/grid/v1/controller.js';
import { ExecutorServiceService } from '../gen/grid/v1/executor.js';
import { HealthService } from '../gen/grpc/health/v1/health.js';
import { EtcdExecutionStore } from '../store/etcd-executions.js';
import { EtcdExecutorStore } from '../store/etcd-executors.js';
import { EtcdJobStore } from '../store/etcd-jobs.js';
import { Leases } from '../store/leases.js';
import { Kv, type KvOptions } from '../store/kv.js';
import type { WatchResumed } from '../store/key-watch.js';
import type { Logger } from '../util/log.js';
import { AuditLog, openAuditSink, type AuditSink } from './audit.js';
import { Authenticator } from './auth.js';
import { prepareDevAccess } from './dev-access.js';
import { Dispatcher } from './dispatcher.js';
import { ExecutionService } from './executions.js';
import { ExecutorRegistry } from './executors.js';
import { FileService } from './files.js';
import { ControllerInstances } from './instances.js';
import { JobPublisher } from './job-publisher.js';
import { LogService } from './logs.js';
import { LockService } from './locks.js';
import { NatsAccess } from './nats-access.js';
import { Recorder } from './recorder.js';
import { SecretBox } from './secrets.js';
import { Retention } from './retention.js';
import { BackendHealth } from './health.js';
import { Defragmenter } from '../store/etcd-maintenance.js';
import { StreamQuota } from './stream-quota.js';
import { Sweeper } from './sweeper.js';
import { ExpiryWatcher } from './expiry.js';
import { controllerService } from './grpc/controller-service.js';
import { executorService } from './grpc/executor-service.js';
import { Health } from './grpc/health-service.js';
import { JobService } from './jobs.js';
import { ExecutorCertificates } from './executor-certs.js';
import { serverCredentials } from '../tls/grpc.js';
import { embeddedTlsFiles, prepareControllerTls, type ControllerTls } from '../tls/setup.js';
import type { NatsTls } from '../bus/connect.js';

type Lifecycle = 'starting' | 'running' | 'stopping' | 'stopped';

interface Cleanup {
  name: string;
  run: () => Promise<void> | void;
}

export class Controller {
  private state: Lifecycle = 'starting';
  private closing?: Promise<void>;
  /** Run in reverse order of registration on close. */
  private readonly cleanups: Cleanup[] = [];
  address = '';
  natsServers: string[] = [];
  etcdEndpoints: string[] = [];
  nc?: NatsConnection;
  kv?: Kv;

  private constructor(readonly cfg: ControllerConfig, readonly log: Logger) {}

  static async start(cfg: ControllerConfig, log: Logger): Promise<Controller> {
    const c = new Controller(cfg, log);
    try {
      await c.boot();
    } catch (err) {
      await c.close();
      throw err;
    }
    return c;
  }

  get lifecycle(): Lifecycle {
    return this.state;
  }

  private async boot(): Promise<void> {
    const { cfg, log } = this;
    let tokens = cfg.tokens;
    let registrationTokens = cfg.registration_tokens;
    // Opened first: a path that cannot be written stops the start before anything else runs.
    // Closed last, by close() itself, so a refused start still leaves only its one error line.
    const auditSink = openAuditSink(cfg.audit_log);
    this.auditSink = auditSink;

    const embeddedServers = cfg.etcd.endpoints.length === 0 || cfg.nats.servers.length === 0;
    let etcdAccess: Pick<KvOptions, 'tls' | 'auth'> = {};
    const natsAccess = await NatsAccess.open(cfg, embeddedServers, log.named('nats'));
    this.natsAccess = natsAccess;
    const tls = await prepareControllerTls(cfg, log);
    this.tls = tls;
    let natsTls: NatsTls = cfg.nats.tls;
    if (embeddedServers) {
      log.info('no etcd or NATS configured: starting the embedded ones', { data_dir: cfg.data_dir });
      const cluster = await startEmbeddedCluster({
        dataDir: cfg.data_dir,
        // With TLS on, the embedded nats-server and etcd serve TLS too, from GRID's CA.
        ...(tls ? { tls: await embeddedTlsFiles(tls, cfg.data_dir) } : {}),
        natsAuth: { serverConfig: (dir) => natsAccess.authority!.serverConfig(dir), user: natsAccess.controllerUser! },
        // A server that dies is restarted on its ports; the clients (NATS, etcd3) reconnect.
        onEvent: (e) => logSupervision(log.named('embedded'), e),
      });
      this.haltEmbedded = () => cluster.halt();
      this.cleanups.push({ name: 'embedded servers', run: () => cluster.stop() });
      this.natsServers = [cluster.natsUrl];
      this.etcdEndpoints = [cluster.etcdEndpoint];
      etcdAccess = { tls: cluster.etcdTls };
      if (cluster.natsTls) natsTls = cluster.natsTls;
      log.info('embedded servers up', { nats: cluster.natsUrl, etcd: cluster.etcdEndpoint, tls: tls ? 'on' : 'off' });
    } else {
      this.natsServers = cfg.nats.servers;
      this.etcdEndpoints = cfg.etcd.endpoints;
      etcdAccess = { tls: cfg.etcd.tls, ...(cfg.etcd.username ? { auth: { username: cfg.etcd.username, password: cfg.etcd.password } } : {}) };
    }

    const etcdLog = log.named('etcd');
    const kv = new Kv({
      endpoints: this.etcdEndpoints, prefix: cfg.etcd.prefix, dialTimeoutMs: cfg.etcd.dial_timeout_ms, ...etcdAccess,
      onWatchResumed: (e) => logWatchResumed(etcdLog, e),
    });
    this.kv = kv;
    this.cleanups.push({ name: 'etcd client', run: () => kv.close() });
    await kv.check(); // fail now, with one line saying what to configure, if etcd cannot be used
    await natsAccess.attach({ kv, servers: this.natsServers, tls: natsTls });

    const nc = await connectBus({
      servers: this.natsServers,
      name: 'grid-controller',
      ...(natsAccess.controllerUser ? { user: natsAccess.controllerUser } : {}),
      tls: natsTls,
    });
    this.nc = nc;
    this.cleanups.push({ name: 'NATS connection', run: () => nc.drain() });
    if (cfg.nats.replicas % 2 === 0) {
      log.warn('nats.replicas is even: 2 (or 4) copies of a stream survive no more servers down than 1 (or 3) do; use an odd count', { replicas: cfg.nats.replicas });
    }
    const replicaChanges = await ensureStreams(nc, {
      dedupWindowMs: 10 * 60_000,
      eventRetentionMs: cfg.event_retention_hours * 3600_000,
      logRetentionMs: cfg.log_retention_hours * 3600_000,
      logMaxBytes: cfg.log_max_bytes,
      jobMessageBytes: cfg.limits.job_message_bytes,
      jobsMaxBytes: cfg.limits.jobs_stream_bytes,
      jobsMaxMessages: cfg.limits.jobs_stream_messages,
      replicas: cfg.nats.replicas,
    });
    for (const c of replicaChanges) logReplicaChange(log, c);

    const embedded = cfg.etcd.endpoints.length === 0;
    if (embedded && cfg.auth === 'tokens' && tokens.length === 0) {
      const dev = await prepareDevAccess(cfg.data_dir, log);
      tokens = [dev.adminToken];
      registrationTokens = [...registrationTokens, { name: 'dev', token: dev.registrationToken, groups: [] }];
      this.devAccess = dev;
    }
    if (cfg.auth === 'tokens' && tokens.length === 0) {
      log.warn('no tokens are configured: every client call will be refused (set tokens, or auth: "none")');
    }
    const auth = new Authenticator(cfg.auth, tokens);
    this.registrationTokens = registrationTokens;

    const jobStore = new EtcdJobStore(kv);
    await jobStore.startCache();
    this.cleanups.push({ name: 'job cache', run: () => jobStore.closeCache() });
    const jobs = new JobService(jobStore, cfg.limits);
    const leases = new Leases(kv);
    this.cleanups.push({ name: 'lease keep-alive stream', run: () => leases.close() });
    const executorStore = new EtcdExecutorStore(kv);
    await executorStore.startCache();
    this.cleanups.push({ name: 'executor cache', run: () => executorStore.closeCache() });
    const executors = new ExecutorRegistry(executorStore, leases, nc, natsAccess, {
      registrationTokens,
      pingDeadlineSeconds: cfg.executor_ping_deadline_seconds,
      natsAdvertise: cfg.nats.advertise.length ? cfg.nats.advertise : this.natsServers,
      ...(tls ? { certificates: new ExecutorCertificates(tls.ca, tls.executorCertDays) } : {}),
      ...(natsTls.ca_file ? { natsCaPem: readFileSync(natsTls.ca_file, 'utf8') } : {}),
      limits: cfg.limits,
    }, log.named('executors'));
    if (!cfg.secrets_key && !embedded) {
      log.warn('no secrets_key configured: using a key generated in data_dir; replicas must share one key to run jobs with secrets', { data_dir: cfg.data_dir });
    }
    const box = cfg.secrets_key ? SecretBox.fromBase64(cfg.secrets_key) : await SecretBox.forDataDir(cfg.data_dir);
    const js = jetstream(nc);
    const instances = new ControllerInstances(kv, log.named('instances'));
    await instances.start();
    this.cleanups.push({ name: 'controller liveness lease', run: () => instances.stop() });
    const instance = instances.id;
    const executionStore = new EtcdExecutionStore(kv, { recordBytes: cfg.limits.record_bytes });
    const streams = new StreamQuota(cfg.limits);
    const publisher = new JobPublisher({ js, jobs: jobStore });
    const files = new FileService({ nc, kv });
    await executionStore.backfillIndexes(log.named('executions'));
    const retention = new Retention({
      store: executionStore,
      kv,
      policy: { maxAgeMs: cfg.execution_retention_hours * 3600_000, maxFinished: cfg.execution_retention_max },
      log: log.named('retention'),
    });
    const executions = new ExecutionService({
      kv, store: executionStore, jobs: jobStore, executors: executorStore, registry: executors, js, nc, box, publisher, instance, retention, log: log.named('executions'),
      limits: cfg.limits, streams,
      fileDigests: (names) => files.recordedDigests(names),
    });
    const logs = new LogService({
      js, store: executionStore, executors: executorStore, log: log.named('logs'),
      authorizeVisible: (p, x, what) => executions.authorizeVisible(p, x, what),
      streams,
    });

    await ensureControllerConsumers(nc);
    const dispatcher = new Dispatcher({ js, store: executionStore, jobs: jobStore, executors: executorStore, publisher, instance, log: log.named('dispatcher') });
    await dispatcher.start();
    this.cleanups.push({ name: 'dispatcher', run: () => dispatcher.stop() });
    const recorder = new Recorder({ js, store: executionStore, publisher, instance, log: log.named('recorder'), executors: executorStore });
    await recorder.start();
    this.cleanups.push({ name: 'recorder', run: () => recorder.stop() });
    const sweeper = new Sweeper({ store: executionStore, executions, executors: executorStore, publisher, instances, log: log.named('sweeper') });
    sweeper.start();
    retention.start();
    this.cleanups.push({ name: 'retention', run: () => retention.stop() });
    // The embedded etcd is GRID's own: defragment it when it is mostly free pages. An external
    // one is its operators' (see the README).
    if (embeddedServers) {
      const defrag = new Defragmenter({ kv, log: log.named('etcd') });
      defrag.start();
      this.cleanups.push({ name: 'etcd defragmentation', run: () => defrag.stop() });
    }
    const backendHealth = new BackendHealth({ kv, nc, store: executionStore, retention, etcdEndpoints: this.etcdEndpoints, natsServers: this.natsServers });
    this.cleanups.push({ name: 'sweeper', run: () => sweeper.stop() });

    const expiry = new ExpiryWatcher(kv, executorStore, log.named('expiry'), Date.now, cfg.executor_ping_deadline_seconds * 1000);
    expiry.onExpired((e) => sweeper.executorExpired(e));
    executors.onRemoved = (e) => sweeper.executorExpired(e, 'was removed');
    await expiry.start();
    this.cleanups.push({ name: 'expiry watcher', run: () => expiry.stop() });
    const health = new Health(['grid.v1.ControllerService', 'grid.v1.ExecutorService']);
    const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    const audit = new AuditLog(auditSink, log.named('audit'), (id) => executors.nameOf(id));
    this.audit = audit;
    const natsServers = this.natsServers;
    const backendError = (err: unknown) => kv.unavailable(err) ?? natsUnavailable(err, natsServers);
    const ctx = { auth, log: log.named('grpc'), audit, backendError };
    server.addService(ControllerServiceService, controllerService(ctx, { jobs, executors, executions, logs, files, health: backendHealth }));
    const locks = new LockService({ kv, leases, ttlSeconds: cfg.lock_ttl_seconds });
    server.addService(ExecutorServiceService, executorService(ctx, executors, executions, files, locks));
    server.addService(HealthService, health.service());
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(cfg.grpc_address, serverCredentials(tls?.server), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.address = cfg.grpc_address.replace(/:\d+$/, `:${port}`);
    this.cleanups.push({
      name: 'gRPC server',
      run: () =>
        new Promise<void>((resolve) => {
          health.setServing(false);
          health.close();
          const force = setTimeout(() => server.forceShutdown(), 5_000);
          server.tryShutdown(() => {
            clearTimeout(force);
            resolve();
          });
        }),
    });
    // Before the server shuts down (cleanups run in reverse): calls waiting for a lock answer now.
    this.cleanups.push({ name: 'lock waits', run: () => locks.close() });
    if (this.devAccess) await this.devAccess.writeClientConfig(this.address, tls?.caFile);
    this.state = 'running';
    log.info('controller ready', {
      address: this.address,
      auth: cfg.auth,
      tls: tls ? 'on' : 'off',
      ...(tls ? { ca_file: tls.caFile } : {}),
      audit_log: cfg.audit_log === '-' ? 'stdout' : cfg.audit_log,
    });
  }

  devAccess?: Awaited<ReturnType<typeof prepareDevAccess>>;
  /** The CA and server certificate; undefined when gRPC runs without TLS. */
  tls?: ControllerTls;
  natsAccess?: NatsAccess;
  audit?: AuditLog;
  private auditSink?: AuditSink;
  /** Stops restarting the embedded servers; the first thing close() does. */
  private haltEmbedded?: () => Promise<void>;
  registrationTokens: RegistrationToken[] = [];

  /** Adds a step that runs first on close (e.g. stopping a dev executor before the servers). */
  beforeClose(run: () => Promise<void>): void {
    this.cleanups.push({ name: 'before close', run });
  }

  /** Stops everything that was started, newest first; every step runs even if one fails. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'stopping';
      // Nothing is restarted while shutting down: a server dying now stays down.
      await this.haltEmbedded?.().catch(() => undefined);
      // A start refused before anything ran (bad configuration) leaves only its one error line.
      const started = this.cleanups.length > 0;
      for (const c of this.cleanups.reverse()) {
        try {
          await c.run();
        } catch (err) {
          this.log.warn('shutdown step failed', { step: c.name, error: (err as Error).message });
        }
      }
      try {
        this.auditSink?.close();
      } catch (err) {
        this.log.warn('shutdown step failed', { step: 'audit log', error: (err as Error).message });
      }
      this.state = 'stopped';
      if (started) this.log.info('controller stopped');
    })();
    return this.closing;
  }
}

/** One line each time a watch is read afresh, saying what it watches and why. */
function logWatchResumed(log: Logger, e: WatchResumed): void {
  const why = {
    compacted: 'etcd compacted the revision it was at',
    refused: 'etcd cancelled it as it was created',
    disconnected: 'the connection to etcd was lost',
    silent: 'etcd held a change it did not deliver',
  }[e.cause];
  log.warn(`watch read afresh and resumed: ${why}`, { watch: e.what, revision: e.revision, ...(e.reason ? { reason: e.reason } : {}) });
}

/** One line per stream whose replica count changed, or which NATS would not scale. */
function logReplicaChange(log: Logger, c: ReplicaChange): void {
  if (c.refused === undefined) {
    log.info('stream replicas changed to nats.replicas', { stream: c.stream, from: c.from, to: c.to });
    return;
  }
  log.warn(
    `stream keeps its replicas: NATS refused nats.replicas; bring up enough JetStream servers and restart the controller, or scale it yourself (nats stream edit ${c.stream} --replicas ${c.to})`,
    { stream: c.stream, replicas: c.from, wanted: c.to, error: c.refused },
  );
}

/** One line per death and restart of an embedded server; an error while it keeps dying. */
function logSupervision(log: Logger, e: SupervisionEvent<EmbeddedServerName>): void {
  const keepsDying = e.type !== 'restarted' && e.flapping;
  const report = keepsDying ? log.error.bind(log) : log.warn.bind(log);
  switch (e.type) {
    case 'exited':
      report(keepsDying ? 'embedded server keeps dying; restarting it' : 'embedded server died; restarting it', {
        server: e.server, pid: e.pid, ...(e.signal ? { signal: e.signal } : { code: e.code }), restart_in_ms: e.restartInMs, attempt: e.attempt,
      });
      break;
    case 'restart-failed':
      report('embedded server did not restart', {
        server: e.server, attempt: e.attempt, error: e.error.message.split('\n')[0]!, restart_in_ms: e.restartInMs,
      });
      break;
    case 'restarted':
      log.info('embedded server restarted', { server: e.server, pid: e.pid, attempt: e.attempt });
      break;
  }
}
