// The controller process: brings up its backends from the config (embedded servers when none
// are configured, etcd, NATS streams), has the use-cases wired over them (wiring.ts), opens the
// front doors on them (doors/: gRPC, HTTP, the NATS intake), and takes it all apart again in order.

import type { NatsConnection } from '@nats-io/nats-core';
import { ensureStreams, type ReplicaChange } from '../bus/setup.js';
import { connectBus, type NatsTls } from '../bus/connect.js';
import type { ControllerConfig, RegistrationToken } from '../config/controller.js';
import { startEmbeddedCluster, type EmbeddedServerName, type SupervisionEvent } from '../embedded/index.js';
import { Kv, type KvOptions } from '../store/kv.js';
import type { WatchResumed } from '../store/key-watch.js';
import { embeddedTlsFiles, prepareControllerTls, type ControllerTls } from '../tls/setup.js';
import { CancelledError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { openAuditSink, type AuditLog, type AuditSink } from './audit.js';
import { prepareDevAccess } from './dev-access.js';
import { serveGrpc } from './doors/grpc/server.js';
import { startHttpDoor } from './doors/http/door.js';
import { NatsIntake } from './doors/nats-intake/intake.js';
import { NatsAccess } from './nats-access.js';
import { wireUseCases } from './wiring.js';

type Lifecycle = 'starting' | 'running' | 'stopping' | 'stopped';

interface Cleanup {
  name: string;
  run: () => Promise<void> | void;
}

/** A child process the controller runs (embedded servers, a dev executor): SIGKILL it and wait. */
type Kill = () => Promise<void>;

export class Controller {
  private state: Lifecycle = 'starting';
  private booting?: Promise<void>;
  private closing?: Promise<void>;
  /** Run in reverse order of registration on close. */
  private readonly cleanups: Cleanup[] = [];
  /** What kill() ends at once: every child process started so far. */
  private readonly kills: Kill[] = [];
  address = '';
  /** host:port of the HTTP door; "" when there is none. */
  httpAddress = '';
  /** The dashboard's URL; "" without an HTTP door or a built dashboard. */
  dashboardUrl = '';
  natsServers: string[] = [];
  etcdEndpoints: string[] = [];
  nc?: NatsConnection;
  kv?: Kv;

  private constructor(readonly cfg: ControllerConfig, readonly log: Logger) {}

  static async start(cfg: ControllerConfig, log: Logger): Promise<Controller> {
    const c = Controller.create(cfg, log);
    await c.run();
    return c;
  }

  /** A controller not started yet: run() starts it, and close() may be called before it is done. */
  static create(cfg: ControllerConfig, log: Logger): Controller {
    return new Controller(cfg, log);
  }

  /**
   * Brings everything up. A start that fails, or that close() was called during (it then throws
   * a CancelledError at its next step), stops what it had started before it throws.
   */
  async run(): Promise<void> {
    try {
      await (this.booting ??= this.boot());
    } catch (err) {
      await this.close();
      throw err;
    }
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
      this.kills.push(() => cluster.kill());
      this.stopIfAsked();
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
    this.stopIfAsked();
    await natsAccess.attach({ kv, servers: this.natsServers, tls: natsTls });

    const nc = await connectBus({
      servers: this.natsServers,
      name: 'grid-controller',
      ...(natsAccess.controllerUser ? { user: natsAccess.controllerUser } : {}),
      tls: natsTls,
    });
    this.nc = nc;
    this.cleanups.push({ name: 'NATS connection', run: () => nc.drain() });
    this.stopIfAsked();
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
    this.stopIfAsked();

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
    this.registrationTokens = registrationTokens;

    const wired = await wireUseCases(
      {
        cfg, log, kv, nc, natsAccess, natsTls, tls, tokens, registrationTokens, auditSink,
        natsServers: this.natsServers, etcdEndpoints: this.etcdEndpoints, embeddedServers,
      },
      (name, run) => this.cleanups.push({ name, run }),
    );
    this.audit = wired.audit;
    this.stopIfAsked();
    const grpc = await serveGrpc({
      address: cfg.grpc_address,
      ...(tls ? { tls: tls.server } : {}),
      ctx: { auth: wired.auth, log: log.named('grpc'), audit: wired.audit, backendError: wired.backendError },
      controller: wired.controller,
      executor: wired.executor,
      readiness: wired.readiness,
    });
    this.address = grpc.address;
    this.cleanups.push({ name: 'gRPC server', run: () => grpc.close() });
    if (cfg.http_address) {
      const http = await startHttpDoor(
        wired.controller,
        { auth: wired.auth, log: log.named('http'), audit: wired.audit, backendError: wired.backendError },
        { address: cfg.http_address, ...(tls ? { tls: tls.server } : {}), ops: { readiness: wired.readiness, metrics: wired.metrics } },
      );
      this.httpAddress = http.address;
      this.dashboardUrl = http.dashboard;
      this.cleanups.push({ name: 'HTTP server', run: () => http.close() });
    }
    const intake = new NatsIntake({
      bus: wired.bus,
      executions: wired.controller.executions,
      ctx: { auth: wired.auth, log: log.named('intake'), audit: wired.audit, backendError: wired.backendError },
    });
    await intake.start();
    this.cleanups.push({ name: 'NATS intake', run: () => intake.stop() });
    // Before the doors shut down (cleanups run in reverse): calls waiting for a lock answer now.
    this.cleanups.push({ name: 'lock waits', run: () => wired.executor.locks.close() });
    if (this.devAccess) await this.devAccess.writeClientConfig(this.address, tls?.caFile);
    this.stopIfAsked();
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

  /**
   * Adds a step that runs first on close (e.g. stopping a dev executor before the servers), and
   * what kill() does for it instead.
   */
  beforeClose(run: () => Promise<void>, kill?: Kill): void {
    this.cleanups.push({ name: 'before close', run });
    if (kill) this.kills.push(kill);
  }

  /** Ends a start that close() was called during, at the step it has reached. */
  private stopIfAsked(): void {
    if (this.closing) throw new CancelledError('the controller was asked to stop while it was starting');
  }

  /** Stops everything that was started, newest first; every step runs even if one fails. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'stopping';
      // A start under way ends at its next step; what it started is stopped below with the rest.
      await this.booting?.catch(() => undefined);
      // Nothing is restarted while shutting down: a server dying now stays down.
      await this.haltEmbedded?.().catch(() => undefined);
      // A start refused before anything ran (bad configuration) leaves only its one error line.
      const started = this.cleanups.length > 0;
      for (let c = this.cleanups.pop(); c; c = this.cleanups.pop()) {
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

  /**
   * Ends every child process at once (SIGKILL), for a stop that must not wait: the embedded
   * servers (restarting none) and whatever beforeClose() named. Waits for a start under way to
   * reach its next step first, so that no process it is starting is missed. close() still runs
   * its steps; those of processes that are gone end at once.
   */
  async kill(): Promise<void> {
    await this.booting?.catch(() => undefined);
    await Promise.allSettled(this.kills.map((k) => k()));
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
