// `executor start`: the long-running agent. Loads its identity, connects to NATS, heartbeats,
// serves its metrics and readiness when given a metrics_address, and on SIGINT/SIGTERM drains:
// stops taking work, lets running tasks finish within the grace period, then reports itself STOPPED.

import { cpus, loadavg } from 'node:os';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectBus } from '../bus/connect.js';
import { GridClient } from '../client/client.js';
import type { ExecutorConfig } from '../config/executor.js';
import { groupsOf } from '../domain/executor.js';
import { ConfigError, ExitCode } from '../errors.js';
import type { Logger } from '../util/log.js';
import { HostRunner } from '../runners/host/index.js';
import { KubernetesRunner, kubernetesStateDir } from '../runners/kubernetes/index.js';
import { NoopRunner } from '../runners/noop/index.js';
import type { Runner } from '../runners/runner.js';
import { Heartbeat } from './heartbeat.js';
import { grpcLink, type ControllerLink } from './link.js';
import { CertificateRenewer, controllerTls } from './certificate.js';
import { ExecutorMetrics } from './metrics.js';
import { serveExecutorOps, type OpsServer } from './ops-server.js';
import { resolveRunAs } from './run-as.js';
import { loadIdentity, type ExecutorIdentity } from './state.js';
import { PUBLISH_AFTER_GRACE_MS, Worker } from './worker.js';

type Lifecycle = 'starting' | 'running' | 'draining' | 'stopped';

/** How long close() waits for the controller to take the report that this executor STOPPED. */
const DEREGISTER_TIMEOUT_MS = 5_000;
/**
 * The longest close() runs past shutdown_grace_seconds before NATS is drained: tasks still
 * running are stopped and their results published (PUBLISH_AFTER_GRACE_MS), then STOPPED is
 * reported. A service manager's stop timeout (systemd TimeoutStopSec, Kubernetes
 * terminationGracePeriodSeconds) must allow the grace plus this, and a little for the drain.
 */
export const STOP_AFTER_GRACE_MS = PUBLISH_AFTER_GRACE_MS + DEREGISTER_TIMEOUT_MS;

/** Work that runs inside the agent (the job consumer); the agent drains it on stop. */
export interface AgentWorker {
  runningTasks(): number;
  /** Stop taking new work; resolve when running tasks are done or the deadline passes. */
  drain(deadlineMs: number): Promise<void>;
}

export class Agent {
  private state: Lifecycle = 'starting';
  private closing?: Promise<void>;
  private heartbeat?: Heartbeat;
  private client?: GridClient;
  private renewer?: CertificateRenewer;
  private link?: ControllerLink;
  nc?: NatsConnection;
  identity?: ExecutorIdentity;
  worker?: AgentWorker;
  private jobs?: Worker;
  private metrics?: ExecutorMetrics;
  private ops?: OpsServer;
  /** The NATS connection is up (not between a disconnect and its reconnect). */
  private natsUp = false;
  /** Resolves when the agent has stopped for good (refused, or closed). */
  readonly done: Promise<number>;
  private resolveDone!: (code: number) => void;

  constructor(readonly cfg: ExecutorConfig, readonly log: Logger) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async start(): Promise<void> {
    if (this.cfg.metrics_address) {
      this.metrics = new ExecutorMetrics({
        running: () => this.worker?.runningTasks() ?? 0,
        links: () => this.links(),
        processMetrics: true,
      });
    }
    const id = await loadIdentity(this.cfg.state_file);
    this.identity = id;
    this.log.info('starting', { id: id.executor_id, name: id.name, controller: this.cfg.controller });
    if (id.ping_deadline_seconds && this.cfg.ping_interval_seconds >= id.ping_deadline_seconds) {
      this.log.warn('ping_interval is not below the controller\'s executor_ping_deadline: this executor will keep expiring', {
        ping_interval_s: this.cfg.ping_interval_seconds,
        ping_deadline_s: id.ping_deadline_seconds,
      });
    }
    this.client = new GridClient({
      address: this.cfg.controller,
      timeoutMs: 10_000,
      tls: controllerTls(this.cfg, id),
      onFailover: (from, to, why) => this.log.warn('controller not answering; using the next address', { from, to, error: why.message }),
    });
    this.renewer = new CertificateRenewer({ client: this.client, cfg: this.cfg, identity: id, log: this.log.named('tls') });
    this.renewer.start();
    const servers = this.cfg.nats_servers.length ? this.cfg.nats_servers : id.nats_servers;
    this.nc = await connectBus({
      servers,
      name: `grid-executor-${id.name}`,
      ...(id.nats_user_jwt && id.nats_user_seed ? { user: { jwt: id.nats_user_jwt, seed: id.nats_user_seed } } : {}),
      ...(id.nats_inbox_prefix ? { inboxPrefix: id.nats_inbox_prefix } : {}),
      tls: this.cfg.nats_tls,
      // The controller's word on the NATS CA, unless this executor was given one.
      ...(!this.cfg.nats_tls.ca_file && id.nats_ca ? { caPem: id.nats_ca } : {}),
    });
    this.natsUp = true;
    void this.watchNats(this.nc);
    const link = (this.link = grpcLink(this.client, id.executor_id, id.executor_secret));
    this.heartbeat = new Heartbeat({
      link,
      intervalMs: this.cfg.ping_interval_seconds * 1000,
      status: () => ({
        runningTasks: this.worker?.runningTasks() ?? 0,
        load: loadavg()[0]! / Math.max(1, cpus().length),
        draining: this.state === 'draining',
        running: this.jobs?.running() ?? [],
      }),
      onRefused: () => void this.close(ExitCode.REFUSED, false),
      onCancelled: (ids) => {
        for (const executionId of ids) this.jobs?.cancel(executionId, 'cancelled');
      },
      onStop: (orders) => this.jobs?.applyStops(orders),
      onResult: (accepted) => this.metrics?.heartbeat(accepted),
      log: this.log.named('heartbeat'),
    });
    this.heartbeat.start();
    const log = this.log.named('worker');
    this.jobs = new Worker({
      nc: this.nc,
      client: this.client,
      link,
      executorId: id.executor_id,
      executorSecret: id.executor_secret,
      executorName: id.name,
      jobConsumer: id.job_consumer,
      poolConsumers: id.pool_consumers ?? [],
      groups: groupsOf({ groups: this.cfg.groups }),
      runners: createRunners(this.cfg, process.env, log),
      concurrency: this.cfg.concurrency,
      workDir: this.cfg.work_dir,
      logMaxBytes: this.cfg.log_max_bytes_per_task,
      log,
      ...(this.metrics ? { onTaskFinished: this.metrics.taskFinished.bind(this.metrics) } : {}),
    });
    this.worker = this.jobs;
    await this.jobs.start();
    this.state = 'running';
    if (this.metrics) {
      this.ops = await serveExecutorOps({
        address: this.cfg.metrics_address,
        metrics: this.metrics,
        status: () => ({ running: this.state === 'running', links: this.links() }),
        log: this.log.named('metrics'),
      });
    }
  }

  private links(): { controller: boolean; nats: boolean } {
    return { controller: this.heartbeat?.reachable ?? false, nats: this.natsUp && !(this.nc?.isClosed() ?? true) };
  }

  private async watchNats(nc: NatsConnection): Promise<void> {
    let lastError = '';
    for await (const s of nc.status()) {
      if (this.closing) continue;
      if (s.type === 'disconnect') {
        this.natsUp = false;
        this.log.warn('NATS connection lost; reconnecting');
      } else if (s.type === 'reconnect') {
        this.natsUp = true;
        this.log.info('NATS connection restored');
      }
      if (s.type === 'error') {
        // The server's words are all there is to tell a revoked user by (no error class for it).
        if (/authentication revoked/i.test(s.error.message)) {
          this.log.error('NATS revoked this executor\'s user: it was removed from the registry or replaced; register it again (executor register)');
          void this.close(ExitCode.REFUSED, false);
          continue;
        }
        // A permission violation, or a refused reconnect: said once, not on every retry.
        if (s.error.message !== lastError) this.log.warn('NATS refused an operation of this executor', { error: s.error.message });
        lastError = s.error.message;
      }
    }
  }

  /** Drains and stops; idempotent. `report` says whether to tell the controller we stopped. */
  close(code = 0, report = true): Promise<void> {
    this.closing ??= (async () => {
      this.state = 'draining';
      const graceMs = this.cfg.shutdown_grace_seconds * 1000;
      if (report) await this.heartbeat?.beat(); // announce DRAINING
      else this.heartbeat?.stop(); // refused or revoked: nothing more to tell the controller
      if (this.worker) {
        this.log.info('draining: waiting for running tasks', { running: this.worker.runningTasks(), grace_s: this.cfg.shutdown_grace_seconds });
        await this.worker.drain(Date.now() + graceMs);
      }
      this.heartbeat?.stop();
      await this.ops?.close();
      if (report && this.link) {
        await this.link
          .deregister(DEREGISTER_TIMEOUT_MS)
          .then(() => this.log.info('reported STOPPED to the controller'))
          .catch((err) => this.log.warn('could not report STOPPED', { error: (err as Error).message }));
      }
      await this.nc?.drain().catch(() => {});
      this.renewer?.stop();
      this.client?.close();
      this.state = 'stopped';
      this.log.info('stopped');
      this.resolveDone(code);
    })();
    return this.closing;
  }
}

/**
 * The runners this executor offers, from its configuration. With GRID_EXECUTOR_NOOP=1 (tests and
 * benchmarks) a noop runner stands in for each configured runner, under that runner's name.
 * GRID_HOST_SPAWNER=0 makes the host runner fork tasks from the executor itself (to compare, or
 * where a second process is not wanted).
 */
export function createRunners(cfg: ExecutorConfig, env: NodeJS.ProcessEnv, log: Logger): Runner[] {
  if (env['GRID_EXECUTOR_NOOP'] === '1') {
    log.warn('GRID_EXECUTOR_NOOP=1: tasks are not really run (a noop runner stands in for every runner)', { runners: cfg.runners.join(',') });
    return cfg.runners.map((name) => new NoopRunner({ name }));
  }
  const runners: Runner[] = [];
  const runAs = resolveRunAs(cfg.run_as);
  if (runAs) log.info('host tasks run as another user', { run_as: cfg.run_as, uid: runAs.uid, gid: runAs.gid });
  for (const name of cfg.runners) {
    if (name === 'host') {
      const spawner = env['GRID_HOST_SPAWNER'] !== '0';
      if (!spawner) log.info('GRID_HOST_SPAWNER=0: host tasks are forked by the executor itself');
      const host = new HostRunner({ workRoot: cfg.work_dir, log: log.named('host'), spawner, ...(runAs ? { runAs } : {}) });
      host.warm();
      runners.push(host);
    }
    else if (name === 'kubernetes') runners.push(kubernetesRunner(cfg));
    else log.warn('this version of the executor has no such runner; its tasks will fail', { runner: name });
  }
  return runners;
}

/** The kubernetes runner; credentials that cannot be loaded are a configuration error. */
function kubernetesRunner(cfg: ExecutorConfig): Runner {
  try {
    return new KubernetesRunner({ config: cfg.kubernetes, stateDir: kubernetesStateDir(cfg.work_dir) });
  } catch (err) {
    const source = cfg.kubernetes.kube_config === '' ? 'in-cluster service account (kube_config is empty)' : cfg.kubernetes.kube_config;
    throw new ConfigError('kubernetes.kube_config', `cannot load the Kubernetes credentials from ${source}: ${(err as Error).message}`, { cause: err });
  }
}
