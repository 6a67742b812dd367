// The chaos scenarios: each brings up its own GRID (rig.ts), puts a load of executions on it,
// injects one fault while tasks run, lifts it, waits for everything to settle and measures what
// happened (measure.ts). `make chaos` runs them at FULL scale; test/e2e/chaos.test.ts at QUICK.

import { setTimeout as delay } from 'node:timers/promises';
import { JOB_ACK_WAIT_MS } from '../../src/bus/consumers.js';
import { currentRevision, readHistory } from './history.js';
import { readLedger, type Run } from './ledger.js';
import { measure, type JobKind } from './measure.js';
import { controllerAnswers, createJobs, jobDeliveries, leaderNode, Load, startRig, TARGET, waitSettled, waitUntil, type Rig } from './rig.js';
import { violations, type Row } from './table.js';

export interface Scale {
  name: string;
  executors: number;
  concurrency: number;
  /** Executions per scenario. */
  executions: number;
  /** How long each run sleeps (serialized runs: half of it). */
  secs: number;
  /** How long to wait for everything to settle after the fault. */
  settleTimeoutMs: number;
}

export const QUICK: Scale = { name: 'quick', executors: 3, concurrency: 2, executions: 12, secs: 1, settleTimeoutMs: 90_000 };
export const FULL: Scale = { name: 'full', executors: 4, concurrency: 3, executions: 48, secs: 1, settleTimeoutMs: 120_000 };

/** The ping deadline of every scenario but the ack-wait one (which must outlast its pause). */
export const PING_DEADLINE_S = 4;

export interface Scenario {
  name: string;
  /** What it does, for the README and the test's title. */
  what: string;
  pingDeadlineS: number;
  lockTtlS?: number;
  /** Runs on 3-node NATS and etcd clusters (rig.ts). */
  clusters?: boolean;
  /** Job kinds, taken in turn by the executions. */
  mix: JobKind[];
  /** About how long the fault lasts, to spread the load over it. */
  faultMs: number;
  /** Waits for its moment, injects the fault (calling `ctx.begin()` just before) and lifts it. */
  inject(rig: Rig, ctx: FaultContext): Promise<void>;
}

export interface FaultContext {
  /** Runs started and not ended, from the side-effect file. */
  inProgress(): Run[];
  /** Marks the fault's start (and the runs it hits). */
  begin(): void;
  /** A line for the scenario's notes (what exactly was hit). */
  note(line: string): void;
}

/** Once a task runs: SIGSTOP of nats-server or etcd for `ms`, then SIGCONT. */
async function pauseServer(rig: Rig, ctx: FaultContext, which: 'nats' | 'etcd', ms: number): Promise<void> {
  await someRunning(ctx);
  ctx.begin();
  rig.servers.pause(which);
  try {
    await delay(ms);
  } finally {
    rig.servers.resume(which);
  }
}

/** Once a task runs: kill -9 of nats-server or etcd, started again `ms` later. */
async function killServer(rig: Rig, ctx: FaultContext, which: 'nats' | 'etcd', ms: number): Promise<void> {
  await someRunning(ctx);
  ctx.begin();
  await rig.servers.kill9(which);
  await delay(ms);
  await rig.servers.restart(which);
}

/**
 * Once a task runs: kill -9 of the NATS node leading GRID_JOBS and of the etcd leader (the
 * nodes whose loss costs the most: both clusters elect again), both started again `ms` later on
 * the same ports and data.
 */
async function killLeaders(rig: Rig, ctx: FaultContext, ms: number): Promise<void> {
  await someRunning(ctx);
  const nats = await leaderNode(rig, 'nats');
  const etcd = await leaderNode(rig, 'etcd');
  ctx.note(`killed NATS ${rig.servers.nodes.nats[nats]!.name} (GRID_JOBS leader) and etcd ${rig.servers.nodes.etcd[etcd]!.name} (leader)`);
  ctx.begin();
  await Promise.all([rig.servers.kill9('nats', nats), rig.servers.kill9('etcd', etcd)]);
  await delay(ms);
  await Promise.all([rig.servers.restart('nats', nats), rig.servers.restart('etcd', etcd)]);
}

/** Once a task runs: kill -9 of the controller, started again `ms` later. */
async function killController(rig: Rig, ctx: FaultContext, ms: number): Promise<void> {
  await someRunning(ctx);
  ctx.begin();
  await rig.restartController(ms);
}

/** SIGSTOP of the first executor once it runs a task, for `ms`, then SIGCONT. */
async function stopExecutor(rig: Rig, ctx: FaultContext, ms: number): Promise<void> {
  const victim = rig.executors[0]!;
  await waitUntil(`${victim.name} runs a task`, () => ctx.inProgress().some((r) => r.executor === victim.name));
  ctx.begin();
  process.kill(victim.pid, 'SIGSTOP');
  try {
    await delay(ms);
  } finally {
    process.kill(victim.pid, 'SIGCONT');
  }
}

const someRunning = (ctx: FaultContext) => waitUntil('a task runs', () => ctx.inProgress().length > 0);

export const SCENARIOS: Scenario[] = [
  {
    name: 'controller kill -9, 5 s',
    what: 'the controller is killed -9 while tasks run and started again 5 s later on the same port and state',
    pingDeadlineS: PING_DEADLINE_S,
    mix: ['pool', 'fanout', 'amo'],
    faultMs: 5_000,
    inject: (rig, ctx) => killController(rig, ctx, 5_000),
  },
  {
    name: 'controller kill -9, 2x ping deadline',
    what: `the controller is killed -9 while tasks run and started again after twice the ping deadline (${2 * PING_DEADLINE_S} s)`,
    pingDeadlineS: PING_DEADLINE_S,
    mix: ['pool', 'fanout', 'amo'],
    faultMs: 2 * PING_DEADLINE_S * 1000,
    inject: (rig, ctx) => killController(rig, ctx, 2 * PING_DEADLINE_S * 1000),
  },
  {
    name: 'pool executor SIGSTOP > ack wait',
    what: `a pool executor is stopped (SIGSTOP) while it runs \`any\` tasks for the job ack wait + 3 s (${(JOB_ACK_WAIT_MS + 3000) / 1000} s; ping deadline 30 s, so it is not declared dead), then SIGCONT`,
    pingDeadlineS: 30,
    mix: ['pool', 'amo'],
    faultMs: JOB_ACK_WAIT_MS + 3000,
    inject: (rig, ctx) => stopExecutor(rig, ctx, JOB_ACK_WAIT_MS + 3000),
  },
  {
    name: 'executor SIGSTOP > ping deadline',
    what: `an executor is stopped (SIGSTOP, a link down) while it runs \`any\` tasks for twice the ping deadline (${2 * PING_DEADLINE_S} s), so it is declared dead, then SIGCONT`,
    pingDeadlineS: PING_DEADLINE_S,
    mix: ['pool', 'amo'],
    faultMs: 2 * PING_DEADLINE_S * 1000,
    inject: (rig, ctx) => stopExecutor(rig, ctx, 2 * PING_DEADLINE_S * 1000),
  },
  {
    name: 'nats-server kill -9 + restart',
    what: 'nats-server is killed -9 under load and started again 2 s later on the same port and store',
    pingDeadlineS: PING_DEADLINE_S,
    mix: ['pool', 'fanout', 'amo'],
    faultMs: 3_000,
    inject: (rig, ctx) => killServer(rig, ctx, 'nats', 2_000),
  },
  {
    name: 'etcd kill -9 + restart',
    what: 'etcd is killed -9 under load and started again 2 s later on the same port and data',
    pingDeadlineS: PING_DEADLINE_S,
    mix: ['pool', 'fanout', 'amo'],
    faultMs: 3_000,
    inject: (rig, ctx) => killServer(rig, ctx, 'etcd', 2_000),
  },
  {
    name: 'clusters: NATS + etcd leader kill -9',
    what: 'on a 3-node NATS cluster (streams on 3 replicas) and a 3-member etcd cluster, the NATS node leading GRID_JOBS and the etcd leader are killed -9 under load and started again 3 s later on the same ports and data',
    pingDeadlineS: PING_DEADLINE_S,
    clusters: true,
    mix: ['pool', 'fanout', 'amo'],
    faultMs: 4_000,
    inject: (rig, ctx) => killLeaders(rig, ctx, 3_000),
  },
  {
    name: 'serialized, NATS SIGSTOP',
    what: `serialized jobs (serialize: <lock>, lock TTL ${PING_DEADLINE_S} s) while nats-server is paused (SIGSTOP) for ${2 * PING_DEADLINE_S} s, then SIGCONT; the lock holder runs on past the pause, others wait in line`,
    pingDeadlineS: PING_DEADLINE_S,
    lockTtlS: PING_DEADLINE_S,
    mix: ['serial', 'serial', 'pool'],
    faultMs: 2 * PING_DEADLINE_S * 1000,
    inject: (rig, ctx) => pauseServer(rig, ctx, 'nats', 2 * PING_DEADLINE_S * 1000),
  },
  {
    name: 'serialized, etcd SIGSTOP',
    what: `serialized jobs (serialize: <lock>, lock TTL ${PING_DEADLINE_S} s) while etcd is paused (SIGSTOP) for ${2 * PING_DEADLINE_S} s, then SIGCONT; the lock holder runs on past the pause, others wait in line`,
    pingDeadlineS: PING_DEADLINE_S,
    lockTtlS: PING_DEADLINE_S,
    mix: ['serial', 'serial', 'pool'],
    faultMs: 2 * PING_DEADLINE_S * 1000,
    inject: (rig, ctx) => pauseServer(rig, ctx, 'etcd', 2 * PING_DEADLINE_S * 1000),
  },
];

/** Load before the fault, and after it. */
const BEFORE_MS = 2_000;
const AFTER_MS = 2_000;

/** Runs one scenario on its own GRID, always taken down after. */
export async function runScenario(s: Scenario, scale: Scale): Promise<Row> {
  const rig = await startRig({ executors: scale.executors, concurrency: scale.concurrency, pingDeadlineS: s.pingDeadlineS, lockTtlS: s.lockTtlS, clusters: s.clusters });
  try {
    const { jobs, byKind, amo } = await createJobs(rig, s.mix);
    // Without on_lost, at_most_once executions run as plain pool ones (and are not counted as such).
    const mix = s.mix.map((k) => (k === 'amo' && !amo ? 'pool' : k));
    if (!byKind.has('pool') && mix.includes('pool')) {
      const more = await createJobs(rig, ['pool']);
      for (const [name, kind] of more.jobs) {
        jobs.set(name, kind);
        byKind.set(kind, name);
      }
    }
    const plan = Array.from({ length: scale.executions }, (_, i) => {
      const kind = mix[i % mix.length]!;
      // The first serialized run holds the lock through the whole fault and beyond, so the lock's
      // TTL passes while it cannot be refreshed; the others are short and wait in line.
      const secs = kind !== 'serial' ? scale.secs : i === 0 ? BEFORE_MS / 1000 + s.faultMs / 1000 + 2 : scale.secs / 2;
      return { job: byKind.get(kind)!, target: TARGET[kind], secs: String(secs) };
    });
    const fromRevision = await currentRevision(rig.kv.client);
    // Half the load before the fault (so that it hits tasks in flight), a quarter during it, a
    // quarter once it is lifted.
    const load = new Load(rig);
    const [before, during, after] = [plan.slice(0, plan.length / 2), plan.slice(plan.length / 2, (plan.length * 3) / 4), plan.slice((plan.length * 3) / 4)];
    const submitting = [load.submit(before, BEFORE_MS)];
    await delay(BEFORE_MS);
    submitting.push(load.submit(during, s.faultMs));
    let faultStartMs = 0;
    let hit: Run[] = [];
    const faultNotes: string[] = [];
    const inProgress = (): Run[] => readLedger(rig.out).filter((r) => r.endLine === undefined);
    await s.inject(rig, {
      inProgress,
      begin: () => {
        faultStartMs = Date.now();
        hit = inProgress();
      },
      note: (line) => faultNotes.push(line),
    });
    const faultEndMs = Date.now();
    // The rest of the load once the controller answers again (not refused by a client backing off).
    await controllerAnswers(rig, 30_000);
    submitting.push(load.submit(after, AFTER_MS));
    await Promise.all(submitting);
    const settled = await waitSettled(rig, load.answered, scale.settleTimeoutMs);
    const history = await readHistory(rig.kv.client, rig.kv.prefix, fromRevision);
    const row = measure({
      scenario: s.name,
      submitted: load.submitted,
      answered: load.answered,
      jobs,
      runs: readLedger(rig.out),
      history,
      faultEndMs,
      settled,
      killed: [],
      amo: !s.mix.includes('amo') ? 'no' : amo ? 'yes' : 'n/a',
    });
    const declaredDead = [...history.executors.values()].flatMap((vs) =>
      vs.filter((e) => e.state === 'EXPIRED').map((e) => `${e.name} at +${((e.state_changed_at_ms - faultStartMs) / 1000).toFixed(1)}s`),
    );
    const refused = [...load.refused].map(([why, n]) => `${n}× ${why.split('\n')[0]!.slice(0, 80)}`);
    const deliveries = await jobDeliveries(rig);
    row.notes.push(
      ...faultNotes,
      `fault for ${((faultEndMs - faultStartMs) / 1000).toFixed(1)}s hit ${hit.length} runs (${countBy(hit.map((r) => r.executor))})`,
      `declared dead: ${declaredDead.join(', ') || 'none'}`,
      `Execute answered after a retry with its idempotency key: ${load.retried}, refused: ${refused.join(', ') || 'none'}`,
      `job messages ${deliveries.messages}, deliveries ${deliveries.deliveries}`,
      ...(settled ? [] : [`did not settle within ${scale.settleTimeoutMs / 1000}s`]),
    );
    if (violations(row).length > 0) row.details.push(...telling(rig));
    return row;
  } finally {
    await rig.stop();
  }
}

function countBy(xs: string[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m].map(([k, n]) => `${k}: ${n}`).join(', ');
}

/** Warnings and state changes from the controller's and executors' logs, for a failing row. */
function telling(rig: Rig): string[] {
  const pick = (who: string, logs: string) =>
    logs
      .split('\n')
      .filter((l) => /WARN|ERROR|expired|lock|lost|superseded|state changed/i.test(l))
      .slice(-15)
      .map((l) => `${who}| ${l.slice(0, 300)}`);
  return [...pick('controller', rig.controller.logs()), ...rig.executors.flatMap((e) => pick(e.name, e.logs()))];
}
