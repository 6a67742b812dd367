// One chaos scenario's GRID, all real processes: nats-server and etcd that can be killed or
// paused (faultable-servers.ts) — one of each, or a 3-node NATS cluster and a 3-member etcd
// cluster with the streams on 3 replicas —, a controller started from dist/ that can be killed
// -9 and started again on the same port and state, and a pool of executor processes in group
// "chaos". Also the load (Execute calls spread over time) and the wait for everything to settle.

import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { STREAMS } from '../../src/bus/subjects.js';
import type { GridClient } from '../../src/client/client.js';
import { isTerminalExecution, type Execution } from '../../src/domain/execution.js';
import { UnavailableError, ValidationError } from '../../src/errors.js';
import { Kv } from '../../src/store/kv.js';
import { startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { startFaultableServers, type FaultableServers, type ServerName } from '../harness/faultable-servers.js';
import { cleanupProcesses, startController, tempDir, type RunningController } from '../harness/processes.js';
import { uniqueName } from '../harness/servers.js';
import { adminClient, operatorClient } from '../e2e/crash-helpers.js';
import { ledgerJob } from './ledger.js';
import type { JobKind } from './measure.js';

export const GROUP = 'chaos';

export interface RigOptions {
  executors: number;
  concurrency: number;
  pingDeadlineS: number;
  lockTtlS?: number;
  /** 3-node NATS and etcd clusters (nats.replicas 3) instead of one server each. */
  clusters?: boolean;
}

const CLUSTER_SIZE = 3;

export interface Rig {
  servers: FaultableServers;
  /** The controller running now (restartController replaces it). */
  controller: RunningController;
  executors: RunningExecutor[];
  ops: GridClient;
  admin: GridClient;
  /** The scenario's etcd prefix, read with `kv` (its own client). */
  kv: Kv;
  /** JetStream as the test's own NATS user (every permission). */
  jsm: JetStreamManager;
  /** The side-effect file every run appends to. */
  out: string;
  /** kill -9 of the controller; `downMs` later it is started again on the same port and state. */
  restartController(downMs: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRig(o: RigOptions): Promise<Rig> {
  const servers = await startFaultableServers(o.clusters ? { natsNodes: CLUSTER_SIZE, etcdMembers: CLUSTER_SIZE } : {});
  const endpoints = { natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, natsUrls: servers.natsUrls, etcdEndpoints: servers.etcdEndpoints };
  let nc: NatsConnection | undefined;
  let rig: Rig | undefined;
  const clients: GridClient[] = [];
  let kv: Kv | undefined;
  const stop = async (): Promise<void> => {
    for (const c of clients) c.close();
    kv?.client.close();
    await nc?.close().catch(() => {});
    // A paused executor would not hear SIGTERM.
    for (const e of rig?.executors ?? []) signal(e.pid, 'SIGCONT');
    await stopExecutors();
    await cleanupProcesses();
    await servers.stop();
  };
  try {
    let controller = await startController({
      ...endpoints,
      config: {
        executor_ping_deadline_seconds: o.pingDeadlineS,
        ...(o.lockTtlS ? { lock_ttl_seconds: o.lockTtlS } : {}),
        ...(o.clusters ? { nats: { replicas: CLUSTER_SIZE } } : {}),
      },
    });
    const executors = await Promise.all(
      Array.from({ length: o.executors }, (_, i) =>
        startExecutor({
          controller: controller.address,
          name: `chaos-${i + 1}`,
          groups: [GROUP],
          pingIntervalSeconds: 1,
          config: { runners: ['host'], concurrency: o.concurrency },
        }),
      ),
    );
    const ops = operatorClient(controller.address);
    const admin = adminClient(controller.address);
    clients.push(ops, admin);
    kv = new Kv({ endpoints: servers.etcdEndpoints, prefix: controller.prefix });
    nc = await servers.connectNats('chaos');
    const jsm = await jetstreamManager(nc);
    rig = {
      servers,
      get controller() {
        return controller;
      },
      executors,
      ops,
      admin,
      kv,
      jsm,
      out: join(tempDir('grid-chaos-'), 'runs.log'),
      async restartController(downMs) {
        const old = controller;
        await old.kill9();
        await delay(downMs);
        controller = await startController({
          ...endpoints,
          prefix: old.prefix,
          configFile: old.configFile,
          args: ['--grpc-address', old.address],
        });
      },
      stop,
    };
    return rig;
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Creates one chaos job of each kind asked for; returns job name → kind. An at_most_once job
 * whose definition is refused (a controller without `on_lost`) is left out: `amo` is false.
 */
export async function createJobs(rig: Rig, kinds: JobKind[]): Promise<{ jobs: Map<string, JobKind>; byKind: Map<JobKind, string>; amo: boolean }> {
  const jobs = new Map<string, JobKind>();
  const byKind = new Map<JobKind, string>();
  let amo = false;
  for (const kind of new Set(kinds)) {
    const name = uniqueName(`chaos-${kind}`);
    const extra: Record<string, unknown> =
      kind === 'serial' ? { serialize: uniqueName('chaos-lock') } : kind === 'amo' ? { on_lost: 'at_most_once' } : {};
    try {
      await rig.admin.ctl.createJob({ definitionJson: JSON.stringify(ledgerJob(name, extra)), replace: false, expectedVersion: 0 });
    } catch (err) {
      // A controller that does not know on_lost refuses the field; the scenario then runs without at_most_once jobs.
      if (kind === 'amo' && err instanceof ValidationError && /\bon_lost\b/.test(err.message)) continue;
      throw err;
    }
    if (kind === 'amo') amo = true;
    jobs.set(name, kind);
    byKind.set(kind, name);
  }
  return { jobs, byKind, amo };
}

export const TARGET: Record<JobKind, string> = { pool: `any:${GROUP}`, amo: `any:${GROUP}`, serial: `any:${GROUP}`, fanout: 'all' };

export interface Planned {
  job: string;
  target: string;
  secs: string;
}

/**
 * Execute calls, counted: how many were made, which were answered, and why the others failed.
 * Like grid-cli, each call carries an idempotency key and is sent again with it while the
 * controller is unavailable or silent (up to 60 s), so a retry never starts a second execution.
 */
export class Load {
  submitted = 0;
  readonly answered: string[] = [];
  /** Calls answered only after being sent again. */
  retried = 0;
  /** Execute errors, by message (the controller was down, …). */
  readonly refused = new Map<string, number>();

  constructor(private readonly rig: Rig) {}

  /**
   * Submits `plan` evenly over `spreadMs`, without waiting for one answer before the next call
   * (a call waits at most the client's deadline); resolves once every call has been answered.
   */
  async submit(plan: Planned[], spreadMs: number): Promise<void> {
    const gap = plan.length > 1 ? spreadMs / (plan.length - 1) : 0;
    const calls: Promise<void>[] = [];
    for (const [i, p] of plan.entries()) {
      if (i > 0) await delay(gap);
      this.submitted++;
      calls.push(
        this.execute(p).then(
          (id) => void this.answered.push(id),
          (err: Error) => void this.refused.set(err.message, (this.refused.get(err.message) ?? 0) + 1),
        ),
      );
    }
    await Promise.all(calls);
  }

  private async execute(p: Planned): Promise<string> {
    const req = {
      job: p.job,
      args: { OUT: this.rig.out, SECS: p.secs },
      target: p.target,
      timeoutSeconds: 0,
      waitOfflineMs: 0,
      batchSize: '',
      maxFailures: '',
      dryRun: false,
      idempotencyKey: randomUUID(),
    };
    const until = Date.now() + 60_000;
    for (let tries = 1; ; tries++) {
      try {
        const res = await this.rig.ops.ctl.execute(req);
        if (tries > 1) this.retried++;
        return res.executionId;
      } catch (err) {
        const again = err instanceof UnavailableError && err.retryable;
        if (!again || Date.now() > until) throw err;
        await delay(500);
      }
    }
  }
}

/**
 * Waits until every execution in the state of record is terminal and nothing is left in the
 * job, request and event streams' consumers (so no late run can start after it); false if that
 * did not happen within `timeoutMs`.
 */
export async function waitSettled(rig: Rig, answered: string[], timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      const records = await rig.kv.list<Execution>(rig.kv.key('executions', ''));
      const ids = new Set(records.map((r) => r.value.id));
      const allTerminal = records.every((r) => isTerminalExecution(r.value.state)) && answered.every((id) => ids.has(id));
      if (allTerminal && (await streamsIdle(rig.jsm))) return true;
    } catch {
      // etcd or NATS is coming back: not yet
    }
    await delay(250);
  }
  return false;
}

async function streamsIdle(jsm: JetStreamManager): Promise<boolean> {
  for (const stream of [STREAMS.requests, STREAMS.jobs, STREAMS.events]) {
    for (const c of await jsm.consumers.list(stream).next()) {
      if (c.num_pending > 0 || c.num_ack_pending > 0) return false;
    }
  }
  return true;
}

/**
 * The node that leads now: among the NATS nodes, the leader of GRID_JOBS (the stream every task
 * goes through); among the etcd members, the Raft leader.
 */
export async function leaderNode(rig: Rig, which: ServerName): Promise<number> {
  let leader: string | undefined;
  if (which === 'nats') {
    leader = (await rig.jsm.streams.info(STREAMS.jobs)).cluster?.leader;
  } else {
    const [status, list] = await Promise.all([rig.kv.client.maintenance.status(), rig.kv.client.cluster.memberList({})]);
    leader = list.members.find((m) => m.ID === status.leader)?.name;
  }
  const node = rig.servers.nodes[which].findIndex((n) => n.name === leader);
  if (node < 0) throw new Error(`chaos: no ${which} node is named ${JSON.stringify(leader)}, the leader`);
  return node;
}

/** Waits until the controller answers a call (after a restart the client may be backing off). */
export async function controllerAnswers(rig: Rig, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      await rig.ops.ctl.whoAmI();
      return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`chaos: the controller does not answer ${timeoutMs} ms after the fault: ${(err as Error).message}`);
      await delay(100);
    }
  }
}

/** Job messages published on GRID_JOBS, and how often they were delivered (redeliveries included). */
export async function jobDeliveries(rig: Rig): Promise<{ messages: number; deliveries: number }> {
  const stream = await rig.jsm.streams.info(STREAMS.jobs);
  let deliveries = 0;
  for (const c of await rig.jsm.consumers.list(STREAMS.jobs).next()) deliveries += c.delivered.consumer_seq;
  return { messages: stream.state.last_seq, deliveries };
}

/** Waits until `pred` holds of the runs in progress (started, not ended); throws after `timeoutMs`. */
export async function waitUntil(what: string, pred: () => boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`chaos: ${what}: not within ${timeoutMs} ms`);
    await delay(100);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone
  }
}
