// The controller's use-cases over the in-memory Store and Bus, without any server: definitions,
// executors registering and heartbeating, executions from Execute to cancel (idempotency keys,
// paging, scoped tokens, secrets), watches and logs, and expiry.

import { randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import type { Principal } from '../../src/controller/auth.js';
import { ExecutionService } from '../../src/controller/executions.js';
import { ExecutorRegistry } from '../../src/controller/executors.js';
import { ExpiryWatcher } from '../../src/controller/expiry.js';
import { JobPublisher, UNKNOWN_WRITE_MS } from '../../src/controller/job-publisher.js';
import { JobService } from '../../src/controller/jobs.js';
import { Dispatcher } from '../../src/controller/dispatcher.js';
import { LogService } from '../../src/controller/logs.js';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { Recorder } from '../../src/controller/recorder.js';
import { Retention } from '../../src/controller/retention.js';
import { SecretBox } from '../../src/controller/secrets.js';
import { Sweeper } from '../../src/controller/sweeper.js';
import { SECRET_SHOWN } from '../../src/controller/views.js';
import type { TaskEvent } from '../../src/domain/execution.js';
import { applyEvent, executorExpired } from '../../src/domain/execution-rules.js';
import {
  AlreadyExistsError,
  ConflictError,
  FailedPreconditionError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  UnavailableError,
  ValidationError,
} from '../../src/errors.js';
import { MemoryExecutionStore, MemoryExecutorStore, MemoryJobStore, MemoryLeases } from '../../src/store/memory.js';
import { createLogger } from '../../src/util/log.js';
import { parsePromText } from '../harness/prom-text.js';

const admin: Principal = { name: 'admin', role: 'admin', groups: [] };
const operator: Principal = { name: 'ops', role: 'operator', groups: [] };
const viewer: Principal = { name: 'view', role: 'viewer', groups: [] };
/** An operator whose token is scoped to the group "web". */
const webOperator: Principal = { name: 'web-ops', role: 'operator', groups: ['web'] };

const REGISTRATION_TOKEN = 'reg-token';

/** The use-cases wired over fresh in-memory stores and bus, with a clock the test moves; `metrics` hears the stores' writes and heartbeats. */
function rig(o: { metrics?: ControllerMetrics; broadcastFallback?: { pendingMs: number; runningMs: number } } = {}) {
  let clock = Date.UTC(2026, 0, 1);
  const now = () => clock;
  const log = createLogger({ level: 'error', name: 'test', write: () => {} });
  const jobStore = new MemoryJobStore(now);
  const leases = new MemoryLeases();
  const executorStore = new MemoryExecutorStore(leases);
  const executionStore = new MemoryExecutionStore({ onWritten: (prev, next) => o.metrics?.recordWritten(prev, next) });
  const bus = new MemoryBus();
  const natsUsers = { executorUser: async () => undefined, revoke: async () => {} };
  const registry = new ExecutorRegistry(executorStore, leases, bus, natsUsers, {
    registrationTokens: [{ name: 'test', token: REGISTRATION_TOKEN, groups: [] }],
    pingDeadlineSeconds: 30,
    natsAdvertise: ['nats://nats.test:4222'],
    now,
    onHeartbeat: (result) => o.metrics?.heartbeat(result),
  }, log);
  const jobs = new JobService(jobStore);
  const publisher = new JobPublisher({ queue: bus, jobs: jobStore });
  const box = SecretBox.fromBase64(randomBytes(32).toString('base64'));
  const retention = new Retention({ store: executionStore, policy: { maxAgeMs: 7 * 86_400_000, maxFinished: 2 }, log, now });
  const executions = new ExecutionService({
    store: executionStore, jobs: jobStore, executors: executorStore, registry, bus, box, publisher, instance: 'controller-1', log, now, retention,
    fileDigests: async () => ({}),
    // Per-executor messages of a broadcast fan-out follow this much later: not within a test, unless it says.
    broadcastFallback: o.broadcastFallback ?? { pendingMs: 3_600_000, runningMs: 3_600_000 },
  });
  const logs = new LogService({ logs: bus, store: executionStore, executors: executorStore, authorizeVisible: (p, x, what) => executions.authorizeVisible(p, x, what) });

  /** Registers an executor and heartbeats once, so that it is ACTIVE; returns its id and secret. */
  async function executor(name: string, groups: string[] = []): Promise<{ id: string; secret: string }> {
    const r = await registry.register({
      registrationToken: REGISTRATION_TOKEN, name, groups, labels: {}, runners: ['host'], concurrency: 2, pingIntervalSeconds: 10, version: '1.0', replace: false,
    });
    await registry.heartbeat({ executorId: r.executorId, executorSecret: r.executorSecret, version: '1.0', runningTasks: 0, load: 0, draining: false });
    return { id: r.executorId, secret: r.executorSecret };
  }

  /** Stores a definition built from `over` (a job that runs `true` on the host by default). */
  async function job(name: string, over: Record<string, unknown> = {}): Promise<void> {
    await jobs.create(admin, { definitionJson: JSON.stringify({ name, description: `the ${name} job`, command: ['true'], ...over }), replace: false });
  }

  function execute(p: Principal, jobName: string, over: Partial<Parameters<ExecutionService['execute']>[1]> = {}) {
    clock += 1_000; // each execution a second after the last: ids and pages follow the clock
    return executions.execute(p, {
      job: jobName, args: {}, target: '', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false, idempotencyKey: '', ...over,
    });
  }

  return {
    jobs, jobStore, registry, executions, logs, retention, publisher, bus, leases, executorStore, executionStore, executor, job, execute, log, now,
    tick: (ms: number) => void (clock += ms),
  };
}

describe('JobService over the in-memory store', () => {
  it('creates, describes, lists, replaces by version and deletes definitions', async () => {
    const { jobs } = rig();
    const def = (description: string) => JSON.stringify({ name: 'backup', description, command: ['backup.sh'] });
    const { job, created } = await jobs.create(admin, { definitionJson: def('nightly'), replace: false });
    expect([created, job.version, job.created_by, job.definition.runner]).toEqual([true, 1, 'admin', 'host']);
    await expect(jobs.create(admin, { definitionJson: def('again'), replace: false })).rejects.toBeInstanceOf(AlreadyExistsError);

    const replaced = await jobs.create(admin, { definitionJson: def('hourly'), replace: true, expectedVersion: 1 });
    expect([replaced.created, replaced.job.version, replaced.job.definition.description]).toEqual([false, 2, 'hourly']);
    await expect(jobs.create(admin, { definitionJson: def('stale'), replace: true, expectedVersion: 1 })).rejects.toBeInstanceOf(ConflictError);

    expect((await jobs.describe(viewer, 'backup')).definition.description).toBe('hourly');
    await jobs.create(admin, { definitionJson: JSON.stringify({ name: 'archive', description: 'a', command: ['true'] }), replace: true });
    expect((await jobs.list(viewer)).map((j) => j.definition.name)).toEqual(['archive', 'backup']);

    await jobs.delete(admin, 'backup');
    await expect(jobs.describe(viewer, 'backup')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses an invalid definition with every problem, and a writer without the role', async () => {
    const { jobs } = rig();
    const bad = JSON.stringify({ name: 'Bad Name', command: ['true'], env_vars: { secrets: [], args: [{ name: 'x', type: 'colour' }] } });
    const err = await jobs.create(admin, { definitionJson: bad, replace: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).problems.map((p) => p.path)).toEqual(['name', 'env_vars.args[0].type']);
    await expect(jobs.create(admin, { definitionJson: '{ not json', replace: false })).rejects.toBeInstanceOf(ValidationError);
    const fine = JSON.stringify({ name: 'fine', description: 'd', command: ['true'] });
    await expect(jobs.create(operator, { definitionJson: fine, replace: false })).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(await jobs.list(viewer)).toEqual([]);
  });
});

describe('ExecutorRegistry over the in-memory store', () => {
  it('registers (queues made), turns ACTIVE on a heartbeat, re-registers with its secret and stops', async () => {
    const { registry, bus, executorStore, leases } = rig();
    await expect(
      registry.register({ registrationToken: 'wrong', name: 'web-1', groups: [], labels: {}, runners: [], concurrency: 1, pingIntervalSeconds: 10, version: '', replace: false }),
    ).rejects.toBeInstanceOf(UnauthenticatedError);

    const input = { registrationToken: REGISTRATION_TOKEN, name: 'web-1', groups: ['web'], labels: {}, runners: ['host'], concurrency: 1, pingIntervalSeconds: 10, version: '1.0', replace: false };
    const r = await registry.register(input);
    expect(r.created).toBe(true);
    expect(bus.queues.get(r.executorId)).toEqual({ node: `node-${r.executorId}`, pools: ['pool-all-host', 'pool-web-host'] });
    expect((await registry.describe(viewer, 'web-1')).state).toBe('STOPPED');

    const beat = { executorId: r.executorId, executorSecret: r.executorSecret, version: '1.0', runningTasks: 1, load: 0.5, draining: false };
    expect(await registry.heartbeat(beat)).toEqual({ state: 'ACTIVE', pingDeadlineSeconds: 30 });
    expect(await executorStore.isAlive(r.executorId)).toBe(true);
    const view = await registry.describe(viewer, r.executorId);
    expect([view.state, view.running_tasks, view.load]).toEqual(['ACTIVE', 1, 0.5]);
    expect(view).not.toHaveProperty('secret_hash');
    await expect(registry.heartbeat({ ...beat, executorSecret: 'guess' })).rejects.toBeInstanceOf(UnauthenticatedError);

    const again = await registry.register({ ...input, executorId: r.executorId, executorSecret: r.executorSecret });
    expect([again.executorId, again.created]).toEqual([r.executorId, false]);
    await expect(registry.register({ ...input, runners: ['docker'] })).rejects.toBeInstanceOf(ValidationError);

    const lease = (await executorStore.get(r.executorId))!.lease_id;
    await registry.deregister(r.executorId, r.executorSecret);
    expect((await registry.describe(viewer, 'web-1')).state).toBe('STOPPED');
    expect([leases.has(lease), await executorStore.isAlive(r.executorId)]).toEqual([false, false]);
  });

  it('an executor whose lease lapses is EXPIRED by the expiry watcher, which tells its listeners', async () => {
    const { executor, executorStore, leases, log } = rig();
    const e = await executor('web-1', ['web']);
    const expired: string[] = [];
    const expiry = new ExpiryWatcher(executorStore, log);
    expiry.onExpired((rec) => void expired.push(rec.name));
    await expiry.start();
    leases.lapse((await executorStore.get(e.id))!.lease_id);
    await new Promise((r) => setImmediate(r));
    expect(expired).toEqual(['web-1']);
    expect((await executorStore.get(e.id))!.state).toBe('EXPIRED');
    await expiry.stop();
  });

  it('a lease that lapses while etcd does not answer waits: after a long outage executors have one ping deadline to heartbeat, after a short one it is expired at once', async () => {
    const { executor, executorStore, leases, log, registry } = rig();
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const web3 = await executor('web-3', ['web']);
    const expired: string[] = [];
    const graceMs = 300;
    let clock = Date.now();
    const expiry = new ExpiryWatcher(executorStore, log, () => clock, graceMs);
    expiry.onExpired((rec) => void expired.push(rec.name));
    await expiry.start();
    await new Promise((r) => setTimeout(r, graceMs + 50)); // the grace after start is over
    const lapse = async (e: { id: string }) => leases.lapse((await executorStore.get(e.id))!.lease_id);
    const settle = () => new Promise((r) => setTimeout(r, 20));

    // An outage of the whole ping deadline: web-1 beats again within the grace, web-2 does not.
    expiry.storeAnswers(false);
    await lapse(web1);
    await lapse(web2);
    await settle();
    expect(expired, 'a lapse while etcd is down').toEqual([]);
    clock += graceMs;
    expiry.storeAnswers(true);
    await registry.heartbeat({ executorId: web1.id, executorSecret: web1.secret, version: '1.0', runningTasks: 0, load: 0, draining: false });
    await settle();
    expect(expired, 'within the grace after etcd answers again').toEqual([]);
    await vi.waitFor(() => expect(expired).toEqual(['web-2']), { timeout: 2_000 });
    expect([(await executorStore.get(web1.id))!.state, (await executorStore.get(web2.id))!.state]).toEqual(['ACTIVE', 'EXPIRED']);

    // A short outage (under a third of the deadline) could not have let a healthy lease lapse: no grace.
    expiry.storeAnswers(false);
    await lapse(web3);
    await settle();
    expect(expired).toEqual(['web-2']);
    clock += graceMs / 10;
    expiry.storeAnswers(true);
    await vi.waitFor(() => expect(expired).toEqual(['web-2', 'web-3']), { timeout: graceMs / 2 });
    await expiry.stop();
  });

  /** web-1 and web-2, and an expiry watcher that knows this controller's heartbeats, past its grace after start. */
  async function twoBeatingExecutors() {
    const r = rig();
    const web1 = await r.executor('web-1', ['web']);
    const web2 = await r.executor('web-2', ['web']);
    const graceMs = 200;
    const expiry = new ExpiryWatcher(r.executorStore, r.log, r.now, graceMs, (id) => r.registry.lastSeen(id));
    const expired: string[] = [];
    expiry.onExpired((rec) => void expired.push(rec.name));
    await expiry.start();
    await new Promise((res) => setTimeout(res, graceMs + 50)); // the grace after start is over
    return { ...r, web1, web2, graceMs, expiry, expired };
  }

  it('a lease that lapses while this controller runs late waits until it runs on time: then the executor whose beat it caught up on stays, the silent one is EXPIRED', async () => {
    const { executorStore, leases, registry, tick, web1, web2, graceMs, expiry, expired } = await twoBeatingExecutors();
    tick(graceMs); // their registration beats are older than the deadline
    expiry.runsLate(true);
    for (const e of [web1, web2]) leases.lapse((await executorStore.get(e.id))!.lease_id);
    await new Promise((r) => setTimeout(r, 50));
    expect(expired, 'while this controller runs late').toEqual([]);
    // Caught up: web-1's beat, which waited in this process's queue, is taken; web-2 sent none.
    await registry.heartbeat({ executorId: web1.id, executorSecret: web1.secret, version: '1.0', runningTasks: 0, load: 0, draining: false });
    expiry.runsLate(false);
    await vi.waitFor(() => expect(expired).toEqual(['web-2']), { timeout: 2_000 });
    expect([(await executorStore.get(web1.id))!.state, (await executorStore.get(web2.id))!.state]).toEqual(['ACTIVE', 'EXPIRED']);
    await expiry.stop();
  });

  it('a lease that lapses while this controller takes the executor\'s heartbeats is not EXPIRED; once they stop for the ping deadline, it is', async () => {
    const { executorStore, leases, registry, tick, web1, web2, graceMs, expiry, expired } = await twoBeatingExecutors();
    // Both beat at registration; 50 ms later their keep-alives were not written in time and the leases lapsed.
    tick(50);
    for (const e of [web1, web2]) leases.lapse((await executorStore.get(e.id))!.lease_id);
    await new Promise((r) => setTimeout(r, 20));
    expect(expired, 'within the ping deadline of a heartbeat').toEqual([]);
    // web-2 beats again (a new lease); web-1 has stopped.
    await registry.heartbeat({ executorId: web2.id, executorSecret: web2.secret, version: '1.0', runningTasks: 0, load: 0, draining: false });
    tick(graceMs);
    await vi.waitFor(() => expect(expired).toEqual(['web-1']), { timeout: 2_000 });
    expect([(await executorStore.get(web1.id))!.state, (await executorStore.get(web2.id))!.state]).toEqual(['EXPIRED', 'ACTIVE']);
    await new Promise((r) => setTimeout(r, graceMs)); // web-2's second look found its new lease
    expect(expired).toEqual(['web-1']);
    await expiry.stop();
  });
});

describe('ExecutionService over the in-memory store and bus', () => {
  it('executes on a group: one task per member, recorded DISPATCHED, one broadcast pointer to the group', async () => {
    const { job, executor, execute, bus, executionStore } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    await executor('db-1', ['db']);

    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    expect(execution!.state).toBe('DISPATCHED');
    expect(execution!.tasks.map((t) => [t.executor_name, t.state])).toEqual([['web-1', 'PENDING'], ['web-2', 'PENDING']]);
    expect(execution!.tasks.map((t) => t.key)).toEqual([web1.id, web2.id]);
    expect(bus.broadcasts).toEqual([{ group: 'web', job: { execution_id: execution!.id } }]);
    expect(bus.jobs).toEqual([]);
    const stored = (await executionStore.get(execution!.id))!.value;
    expect([stored.dispatcher, stored.broadcast_group]).toEqual(['controller-1', 'web']);
  });

  it('a broadcast fan-out: per-executor messages follow for the tasks not started, then for those still running; at once for an executor offline at dispatch', async () => {
    const { job, executor, execute, bus, executions, executionStore, executorStore, leases } = rig({ broadcastFallback: { pendingMs: 20, runningMs: 300 } });
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const web3 = await executor('web-3', ['web']);
    const web4 = await executor('web-4', ['web']);
    leases.lapse((await executorStore.get(web3.id))!.lease_id);
    await executorStore.expire(web3.id, Date.now());

    const { execution } = await execute(operator, 'deploy', { target: 'group:web', waitOfflineMs: 60_000 });
    const id = execution!.id;
    expect(bus.broadcasts).toEqual([{ group: 'web', job: { execution_id: id } }]);
    // The offline executor's message waits in its queue, as without the broadcast.
    expect(bus.jobs).toEqual([{ to: { executorId: web3.id }, job: { execution_id: id, task_key: web3.id } }]);
    // web-1 hears the pointer and runs its task to the end before the fallback is due.
    const claimed = await executions.beginTask({ executorId: web1.id, secret: web1.secret, session: 's1', executionId: id, taskKey: web1.id });
    expect(claimed.proceed).toBe(true);
    const result: TaskEvent = {
      execution_id: id, task_key: web1.id, executor_id: web1.id, executor_name: 'web-1', attempt: claimed.attempt!, kind: 'finished', at_ms: 5, outcome: 'succeeded', exit_code: 0,
    };
    await executionStore.update(id, (x) => applyEvent(x, result));
    // web-4 hears it and is still running its task.
    expect((await executions.beginTask({ executorId: web4.id, secret: web4.secret, session: 's4', executionId: id, taskKey: web4.id })).proceed).toBe(true);
    // web-2 missed it: its message follows; web-1's task ended, so it gets none.
    await vi.waitFor(() => expect(bus.jobs.map((j) => j.to)).toEqual([{ executorId: web3.id }, { executorId: web2.id }]));
    // Then the running task's (were web-4 restarted, that message is how it would learn of it).
    await vi.waitFor(() => expect(bus.jobs.map((j) => j.to)).toEqual([{ executorId: web3.id }, { executorId: web2.id }, { executorId: web4.id }]));
  });

  it('claims that change nothing (a repeat, a task another live executor holds) are answered without a copy of the record to change', async () => {
    const { job, executor, execute, executions, executionStore } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'any:web' });
    const id = execution!.id;
    const taskKey = execution!.tasks[0]!.key;
    const update = vi.spyOn(executionStore, 'update'); // the memory store's write path, given a copy
    const ask = (e: { id: string; secret: string }, session: string) => executions.beginTask({ executorId: e.id, secret: e.secret, session, executionId: id, taskKey });
    expect(await ask(web1, 's1')).toMatchObject({ proceed: true, attempt: 1 });
    expect(update).toHaveBeenCalledTimes(1);
    // Its answer lost, web-1 asks again: the same attempt, handed out again, with nothing copied or written.
    const again = await ask(web1, 's1');
    expect(again).toMatchObject({ proceed: true, attempt: 1, task: { job: 'deploy', jobVersion: 1 } });
    const other = await ask(web2, 's2');
    expect(other).toMatchObject({ proceed: false, later: true, reason: expect.stringMatching(/running on executor web-1 .*alive/) });
    expect(update).toHaveBeenCalledTimes(1);
    expect((await executionStore.get(id))!.value.tasks[0]).toMatchObject({ state: 'RUNNING', attempts: 1, executor_name: 'web-1' });
    update.mockRestore();
  });

  it('executors that expire together are applied together: one write of the record for all of them, the same outcome as one by one', async () => {
    const { job, executor, execute, executions, executionStore, executorStore, publisher, log, now, leases } = rig();
    await job('deploy');
    const web = await Promise.all(['web-1', 'web-2', 'web-3', 'web-4', 'web-5'].map((n) => executor(n, ['web'])));
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    const id = execution!.id;
    for (const e of web.slice(0, 2)) {
      expect((await executions.beginTask({ executorId: e.id, secret: e.secret, session: 's', executionId: id, taskKey: e.id })).proceed).toBe(true);
    }
    const gone = await Promise.all(
      web.slice(0, 4).map(async (e) => {
        leases.lapse((await executorStore.get(e.id))!.lease_id);
        return (await executorStore.expire(e.id, now()))!;
      }),
    );
    // What applying them one at a time gives.
    const expected = structuredClone((await executionStore.get(id))!.value);
    for (const e of gone) executorExpired(expected, e.id, e.name, now(), 'expired', 'retry');
    const sweeper = new Sweeper({ store: executionStore, executions, executors: executorStore, publisher, log, now });
    const update = vi.spyOn(executionStore, 'update'); // the memory store's write path, once per execution written
    await Promise.all(gone.map((e) => sweeper.executorExpired(e)));
    // The first goes alone at once; the three told while it was written go together.
    expect(update).toHaveBeenCalledTimes(2);
    update.mockRestore();
    const x = (await executionStore.get(id))!.value;
    expect(x.tasks).toEqual(expected.tasks);
    expect(x.tasks.map((t) => t.state)).toEqual(expect.arrayContaining(['PENDING']));
    expect(x.tasks.filter((t) => t.executor_name === 'web-5')).toMatchObject([{ state: 'PENDING', reason: '' }]);
  });

  it('executes on "any one of a pool": one task, one message to the pool', async () => {
    const { job, executor, execute, bus } = rig();
    await job('report');
    await executor('web-1', ['web']);
    await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'report', { target: 'any:web' });
    expect(execution!.tasks.map((t) => [t.executor_name, t.state])).toEqual([['(pool web)', 'PENDING']]);
    expect(bus.jobs.map((j) => j.to)).toEqual([{ pool: 'web', runner: 'host' }]);
  });

  it('a dry run plans without recording or sending anything', async () => {
    const { job, executor, execute, bus, executionStore } = rig();
    await job('deploy');
    await executor('web-1', ['web']);
    const res = await execute(operator, 'deploy', { target: 'all', dryRun: true });
    expect(res.dryRun!.map((r) => [r.executorName, r.skipped])).toEqual([['web-1', false]]);
    expect([res.execution, bus.jobs.length, (await executionStore.active()).length]).toEqual([undefined, 0, 0]);
  });

  it('two Execute calls with one idempotency key start one execution; another request under the key is refused', async () => {
    const { job, executor, execute, bus, executionStore } = rig();
    await job('deploy', { env_vars: { secrets: [], args: [{ name: 'VERSION', description: 'v', required: true }] } });
    await executor('web-1', ['web']);
    const first = await execute(operator, 'deploy', { target: 'group:web', args: { VERSION: '1.2' }, idempotencyKey: 'deploy-1.2' });
    const second = await execute(operator, 'deploy', { target: 'group:web', args: { VERSION: '1.2' }, idempotencyKey: 'deploy-1.2' });
    expect(second.execution!.id).toBe(first.execution!.id);
    expect([first.reused, second.reused]).toEqual([undefined, true]);
    expect((await executionStore.list({ limit: 10 })).executions).toHaveLength(1);
    expect(bus.broadcasts).toHaveLength(1);

    await expect(execute(operator, 'deploy', { target: 'group:web', args: { VERSION: '1.3' }, idempotencyKey: 'deploy-1.2' })).rejects.toBeInstanceOf(
      FailedPreconditionError,
    );
    // Another caller's key of the same name is its own.
    const theirs = await execute(admin, 'deploy', { target: 'group:web', args: { VERSION: '1.2' }, idempotencyKey: 'deploy-1.2' });
    expect(theirs.execution!.id).not.toBe(first.execution!.id);
  });

  it('an execution etcd recorded though the create failed (the answer was lost) has its job messages sent by this process', async () => {
    const { job, executor, execute, executions, bus, executionStore, tick } = rig();
    await job('deploy');
    await executor('web-1', ['web']);
    // The transaction commits, and its answer is lost: the caller sees an error, not the record.
    const create = executionStore.create.bind(executionStore);
    const lostAnswer = vi.spyOn(executionStore, 'create').mockImplementationOnce(async (x, claim) => {
      await create(x, claim);
      throw new UnavailableError('etcd: request timed out');
    });
    await expect(execute(operator, 'deploy', { target: 'any:web', idempotencyKey: 'k-1' })).rejects.toBeInstanceOf(UnavailableError);
    lostAnswer.mockRestore();
    // The caller's retry finds the execution its key started; no job message went out yet.
    const retry = await execute(operator, 'deploy', { target: 'any:web', idempotencyKey: 'k-1' });
    expect([retry.reused, bus.jobs.length]).toEqual([true, 0]);
    // The sweep of the process that released it (alive, so no other replica's sweeper does) sends it.
    await executions.retryUnsent();
    expect(bus.jobs.map((j) => [j.to, j.job.execution_id])).toEqual([[{ pool: 'web', runner: 'host' }, retry.execution!.id]]);
    await executions.retryUnsent();
    expect(bus.jobs).toHaveLength(1);

    // A create that was not committed: its record is looked for until UNKNOWN_WRITE_MS have passed, then no more.
    vi.spyOn(executionStore, 'create').mockRejectedValueOnce(new UnavailableError('etcd: request timed out'));
    await expect(execute(operator, 'deploy', { target: 'any:web', idempotencyKey: 'k-2' })).rejects.toBeInstanceOf(UnavailableError);
    const gets = vi.spyOn(executionStore, 'get');
    await executions.retryUnsent();
    tick(UNKNOWN_WRITE_MS);
    await executions.retryUnsent();
    await executions.retryUnsent();
    expect([gets.mock.calls.length, bus.jobs.length]).toEqual([2, 1]);
  });

  it('cancel stops the execution and tells every executor that has a task of it; a second cancel is refused', async () => {
    const { job, executor, execute, executions, bus } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });

    const cancelled = await executions.cancel(operator, execution!.id, 'wrong version');
    expect([cancelled.state, cancelled.reason]).toEqual(['CANCELLED', 'cancelled by ops: wrong version']);
    expect(cancelled.tasks.map((t) => t.state)).toEqual(['CANCELLED', 'CANCELLED']);
    expect(bus.stops.map((s) => s.executorId).sort()).toEqual([web1.id, web2.id].sort());
    expect(bus.stops.every((s) => s.stop.execution_id === execution!.id && s.stop.reason === 'cancelled')).toBe(true);
    await expect(executions.cancel(operator, execution!.id, '')).rejects.toBeInstanceOf(FailedPreconditionError);
    await expect(executions.cancel(viewer, execution!.id, '')).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it('lists newest first, a page at a time, by job and by state', async () => {
    const { job, executor, execute, executions } = rig();
    await job('a');
    await job('b');
    await executor('web-1', ['web']);
    const ids: string[] = [];
    for (const name of ['a', 'b', 'a', 'b', 'a']) ids.push((await execute(operator, name, { target: 'all' })).execution!.id);
    const newestFirst = [...ids].reverse();

    const p1 = await executions.list(viewer, { limit: 2 });
    expect(p1.executions.map((x) => x.id)).toEqual(newestFirst.slice(0, 2));
    const p2 = await executions.list(viewer, { limit: 2, pageAfter: p1.next });
    expect(p2.executions.map((x) => x.id)).toEqual(newestFirst.slice(2, 4));
    const p3 = await executions.list(viewer, { limit: 2, pageAfter: p2.next });
    expect([p3.executions.map((x) => x.id), p3.next]).toEqual([newestFirst.slice(4), '']);

    expect((await executions.list(viewer, { job: 'b' })).executions.map((x) => x.id)).toEqual([ids[3], ids[1]]);
    await executions.cancel(operator, ids[0]!, '');
    expect((await executions.list(viewer, { state: 'CANCELLED' })).executions.map((x) => x.id)).toEqual([ids[0]]);
    await expect(executions.list(viewer, { pageAfter: 'not-an-id' })).rejects.toBeInstanceOf(ValidationError);
  });

  it('counts executions per state, of one job, and only those a scoped token may see', async () => {
    const { job, executor, execute, executions } = rig();
    await job('a');
    await job('b');
    await executor('web-1', ['web']);
    await executor('db-1', ['db']);
    const a1 = (await execute(operator, 'a', { target: 'group:web' })).execution!;
    await execute(operator, 'a', { target: 'group:db' });
    const b1 = (await execute(operator, 'b', { target: 'group:web' })).execution!;
    await executions.cancel(operator, a1.id, '');
    await executions.cancel(operator, b1.id, '');
    const none = { QUEUED: 0, DISPATCHED: 0, RUNNING: 0, SUCCEEDED: 0, FAILED: 0, CANCELLED: 0, TIMED_OUT: 0 };
    expect(await executions.counts(viewer, {})).toEqual({ counts: { ...none, DISPATCHED: 1, CANCELLED: 2 }, atLeast: [] });
    expect(await executions.counts(viewer, { job: 'a' })).toEqual({ counts: { ...none, DISPATCHED: 1, CANCELLED: 1 }, atLeast: [] });
    expect(await executions.counts(webOperator, {})).toEqual({ counts: { ...none, CANCELLED: 2 }, atLeast: [] });
  });

  it('retention prunes the oldest finished executions beyond its count, and lists say so', async () => {
    const { job, executor, execute, executions, retention } = rig();
    await job('deploy');
    await executor('web-1', ['web']);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await execute(operator, 'deploy', { target: 'all' })).execution!.id);
    for (const id of ids.slice(0, 3)) await executions.cancel(operator, id, '');
    expect(await retention.pass()).toBe(1);
    const page = await executions.list(viewer, {});
    expect(page.executions.map((x) => x.id)).toEqual([ids[3], ids[2], ids[1]]);
    expect(page.prunedBeforeMs).toBeGreaterThan(0);
    expect(page.retention).toBe('7 days, at most 2 finished');
  });

  it('a token scoped to groups executes, sees and cancels only inside them', async () => {
    const { job, executor, execute, executions } = rig();
    await job('deploy');
    await executor('web-1', ['web']);
    await executor('db-1', ['db']);
    await expect(execute(webOperator, 'deploy', { target: 'group:db' })).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(execute(webOperator, 'deploy', { target: 'all' })).rejects.toBeInstanceOf(PermissionDeniedError);

    const mine = (await execute(webOperator, 'deploy', { target: 'group:web' })).execution!;
    const onDb = (await execute(operator, 'deploy', { target: 'group:db' })).execution!;
    const onNode = (await execute(operator, 'deploy', { target: 'node:web-1' })).execution!;

    expect((await executions.list(webOperator, {})).executions.map((x) => x.id)).toEqual([onNode.id, mine.id]);
    expect((await executions.list(operator, {})).executions).toHaveLength(3);
    await expect(executions.get(webOperator, onDb.id)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(executions.cancel(webOperator, onDb.id, '')).rejects.toBeInstanceOf(PermissionDeniedError);
    expect((await executions.get(webOperator, mine.id)).id).toBe(mine.id);
  });

  it('the views never carry a secret: shown as such, sealed in the record, opened only for the executor', async () => {
    const { job, executor, execute, executions, executionStore } = rig();
    await job('release', {
      env_vars: { secrets: [{ name: 'API_TOKEN', description: 't', required: true }], args: [{ name: 'VERSION', description: 'v', required: true }] },
    });
    const web1 = await executor('web-1', ['web']);
    await expect(execute(operator, 'release', { target: 'group:web', args: { VERSION: '2' } })).rejects.toBeInstanceOf(ValidationError);

    const { execution } = await execute(operator, 'release', { target: 'group:web', args: { VERSION: '2', API_TOKEN: 's3cr3t-value' } });
    expect(execution!.args).toEqual({ VERSION: '2', API_TOKEN: SECRET_SHOWN });
    for (const view of [execution!, await executions.get(viewer, execution!.id), (await executions.list(viewer, {})).executions[0]!]) {
      expect(JSON.stringify(view)).not.toContain('s3cr3t-value');
      expect(view).not.toHaveProperty('secret_box');
    }
    const record = (await executionStore.get(execution!.id))!.value;
    expect(record.secret_box).toBeTruthy();
    expect(JSON.stringify(record)).not.toContain('s3cr3t-value');

    const begun = await executions.beginTask({ executorId: web1.id, secret: web1.secret, session: 's1', executionId: execution!.id, taskKey: web1.id });
    expect([begun.proceed, begun.secrets]).toEqual([true, { API_TOKEN: 's3cr3t-value' }]);
    expect((await executions.get(viewer, execution!.id)).tasks[0]!.state).toBe('RUNNING');
  });

  it('a watch sends the record as it changes and ends with its terminal state', async () => {
    const { job, executor, execute, executions, executionStore } = rig();
    await job('deploy');
    await executor('web-1', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const x of executions.watch(viewer, execution!.id, new AbortController().signal)) seen.push(x.state);
    })();
    await new Promise((r) => setImmediate(r));
    await executionStore.update(execution!.id, (x) => ((x.state = 'RUNNING'), true));
    await new Promise((r) => setImmediate(r));
    await executions.cancel(operator, execution!.id, '');
    await watching;
    expect(seen).toEqual(['DISPATCHED', 'RUNNING', 'CANCELLED']);
  });
});

describe('LogService over the in-memory bus', () => {
  it('reads an ended execution\'s log back, joining small messages per executor and stream, and ends', async () => {
    const { job, executor, execute, executions, logs, bus } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    await executions.cancel(operator, execution!.id, '');
    bus.appendLog(execution!.id, { executorId: web1.id, executorName: 'web-1', data: 'one\n' });
    bus.appendLog(execution!.id, { executorId: web1.id, executorName: 'web-1', data: 'two\n' });
    bus.appendLog(execution!.id, { executorId: web1.id, executorName: 'web-1', stream: 'stderr', data: 'oops\n' });
    bus.appendLog(execution!.id, { executorId: 'STRANGER', data: 'not from a task of it\n' });

    const got: Array<[string, string, string]> = [];
    for await (const c of logs.stream(operator, { executionId: execution!.id, follow: true, executor: '' }, new AbortController().signal)) {
      got.push([c.executorName, c.stream, new TextDecoder().decode(c.data)]);
    }
    expect(got).toEqual([['web-1', 'stdout', 'one\ntwo\n'], ['web-1', 'stderr', 'oops\n']]);
    await expect(logs.stream(viewer, { executionId: execution!.id, follow: false, executor: '' }, new AbortController().signal)[Symbol.asyncIterator]().next()).rejects.toBeInstanceOf(
      PermissionDeniedError,
    );
  });
});

describe('LogService: tail and since', () => {
  it('sends only the last N lines of each executor and what was stored since a time', async () => {
    const { job, executor, execute, executions, logs, bus } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    await executions.cancel(operator, execution!.id, '');
    const id = execution!.id;
    bus.appendLog(id, { executorId: web1.id, executorName: 'web-1', data: '1\n2\n3\n', atMs: 1000 });
    bus.appendLog(id, { executorId: web2.id, executorName: 'web-2', data: 'x\ny\n', atMs: 1500 });
    bus.appendLog(id, { executorId: web1.id, executorName: 'web-1', data: '4\n5', atMs: 2000 });
    bus.appendLog(id, { executorId: web1.id, executorName: 'web-1', data: '5\n', atMs: 3000 });

    const read = async (sel: { tailLines?: number; sinceMs?: number; follow?: boolean; onReady?: () => void }) => {
      const got: string[] = [];
      for await (const c of logs.stream(operator, { executionId: id, follow: false, executor: '', ...sel }, new AbortController().signal)) {
        got.push(`${c.executorName}:${new TextDecoder().decode(c.data)}`);
      }
      return got.join('');
    };
    expect(await read({ tailLines: 2 })).toBe('web-2:x\ny\nweb-1:4\n55\n');
    expect(await read({ sinceMs: 2000 })).toBe('web-1:4\n55\n');
    expect(await read({ sinceMs: 4000 })).toBe('');
    expect(await read({ tailLines: 0 })).toBe('');
    await expect(read({ tailLines: -1 })).rejects.toBeInstanceOf(ValidationError);

    // Followed: the tail is cut from what the log held when it was opened; what arrives after
    // that goes out whole, however much of it is waiting by the time the backlog is read.
    const arrive = () => {
      bus.appendLog(id, { executorId: web1.id, executorName: 'web-1', data: '6\n', atMs: 4000 });
      bus.appendLog(id, { executorId: web1.id, executorName: 'web-1', data: '7\n', atMs: 5000 });
    };
    expect(await read({ tailLines: 1, follow: true, onReady: arrive })).toBe('web-2:y\nweb-1:55\nweb-1:6\n7\n');
  });
});

describe('the loops beside the use-cases, over the in-memory bus', () => {
  it('the recorder applies executors\' events: the execution SUCCEEDED once every task did; an event from another executor is refused', async () => {
    const { job, executor, execute, executions, executionStore, publisher, bus, executorStore, log } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    const id = execution!.id;
    for (const e of [web1, web2]) {
      const begun = await executions.beginTask({ executorId: e.id, secret: e.secret, session: 's', executionId: id, taskKey: e.id });
      expect(begun.proceed).toBe(true);
    }
    const recorder = new Recorder({ bus, store: executionStore, publisher, log, executors: executorStore });
    await recorder.start();
    const finished = (e: { id: string }, name: string, by = e): TaskEvent => ({
      execution_id: id, task_key: e.id, executor_id: by.id, executor_name: name, attempt: 1, kind: 'finished', at_ms: 5, outcome: 'succeeded', exit_code: 0,
    });
    const forged = bus.publishEvent(finished(web1, 'web-2', web2));
    bus.publishEvent(finished(web1, 'web-1'));
    await bus.idle();
    expect([forged.settled, recorder.rejected()]).toEqual(['term', 1]);
    expect((await executions.get(viewer, id)).state).toBe('RUNNING');
    bus.publishEvent(finished(web2, 'web-2'));
    await bus.idle();
    const done = await executions.get(viewer, id);
    expect([done.state, done.tasks.map((t) => [t.state, t.exit_code])]).toEqual(['SUCCEEDED', [['SUCCEEDED', 0], ['SUCCEEDED', 0]]]);
    await recorder.stop();
  });

  it('a rollout wave whose release was recorded though the write failed (the answer was lost) is sent by the sweep', async () => {
    const { job, executor, execute, executions, executionStore, publisher, bus, executorStore, log } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web', batchSize: '1' });
    const id = execution!.id;
    const first = bus.jobs.map((j) => j.job.task_key);
    expect(first).toHaveLength(1);
    const [runner, next] = first[0] === web1.id ? [web1, web2] : [web2, web1];
    expect((await executions.beginTask({ executorId: runner.id, secret: runner.secret, session: 's', executionId: id, taskKey: runner.id })).proceed).toBe(true);
    const recorder = new Recorder({ bus, store: executionStore, publisher, log, executors: executorStore });
    await recorder.start();
    // The write that records the first task's end, and releases the second wave, commits; its answer is lost.
    const updateMany = executionStore.updateMany.bind(executionStore);
    const lostAnswer = vi.spyOn(executionStore, 'updateMany').mockImplementationOnce(async (ids, fn) => {
      await updateMany(ids, fn);
      throw new UnavailableError('etcd: request timed out');
    });
    bus.publishEvent({ execution_id: id, task_key: runner.id, executor_id: runner.id, executor_name: 'x', attempt: 1, kind: 'finished', at_ms: Date.now(), outcome: 'succeeded', exit_code: 0 });
    await bus.idle();
    await new Promise((r) => setTimeout(r, 1_100)); // the nak'ed event is redelivered, and changes nothing
    await bus.idle();
    lostAnswer.mockRestore();
    const x = (await executionStore.get(id))!.value;
    expect(x.tasks.map((t) => [t.key, t.state, t.released_at_ms! > 0])).toEqual([[runner.id, 'SUCCEEDED', true], [next.id, 'PENDING', true]]);
    expect(bus.jobs.map((j) => j.job.task_key)).toEqual(first);
    await executions.retryUnsent();
    expect(bus.jobs.map((j) => j.job.task_key)).toEqual([...first, next.id]);
    await recorder.stop();
  });

  it('a record an older version left QUEUED is re-requested by the sweeper and dispatched by the dispatcher', async () => {
    const { job, executor, executions, executionStore, jobStore, publisher, bus, executorStore, log, now, tick } = rig();
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const at = now();
    await executionStore.create({
      id: 'QUEUED-BY-AN-OLDER-VERSION', job: 'deploy', job_version: 1, args: {}, secret_names: [], target: 'group:web', requester: 'ops', state: 'QUEUED',
      reason: '', created_at_ms: at, updated_at_ms: at, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0, tasks: [],
    });
    const dispatcher = new Dispatcher({ bus, store: executionStore, jobs: jobStore, executors: executorStore, publisher, log, now });
    await dispatcher.start();
    const sweeper = new Sweeper({ store: executionStore, executions, log, now });
    await sweeper.sweep();
    expect(bus.dispatchRequests).toEqual([]); // not stuck yet: accepted a moment ago
    tick(20_000);
    await sweeper.sweep();
    await bus.idle();
    expect(bus.dispatchRequests).toEqual(['QUEUED-BY-AN-OLDER-VERSION']);
    const x = await executions.get(viewer, 'QUEUED-BY-AN-OLDER-VERSION');
    expect([x.state, x.tasks.map((t) => t.executor_name)]).toEqual(['DISPATCHED', ['web-1']]);
    expect(bus.jobs).toEqual([{ to: { executorId: web1.id }, job: { execution_id: 'QUEUED-BY-AN-OLDER-VERSION', task_key: web1.id } }]);
    await dispatcher.stop();
  });
});

describe('metrics over the use-cases', () => {
  it('counts an execution from Execute to its end: created, first claims and their latency, tasks and their durations, the end, heartbeats', async () => {
    const metrics = new ControllerMetrics({ executors: async () => [{ state: 'ACTIVE' }, { state: 'ACTIVE' }, { state: 'EXPIRED' }] });
    const { job, executor, execute, executions, executionStore, publisher, bus, executorStore, log, registry, tick } = rig({ metrics });
    await job('deploy');
    const web1 = await executor('web-1', ['web']);
    const web2 = await executor('web-2', ['web']);
    await expect(registry.heartbeat({ executorId: web1.id, executorSecret: 'wrong', version: '1.0', runningTasks: 0, load: 0, draining: false })).rejects.toBeInstanceOf(UnauthenticatedError);
    const { execution } = await execute(operator, 'deploy', { target: 'group:web' });
    const id = execution!.id;
    tick(250);
    for (const e of [web1, web2]) expect((await executions.beginTask({ executorId: e.id, secret: e.secret, session: 's', executionId: id, taskKey: e.id })).proceed).toBe(true);
    const recorder = new Recorder({ bus, store: executionStore, publisher, log, executors: executorStore });
    await recorder.start();
    const startedAt = (await executions.get(viewer, id)).tasks[0]!.started_at_ms;
    const finished = (e: { id: string }, outcome: 'succeeded' | 'failed', after: number): TaskEvent => ({
      execution_id: id, task_key: e.id, executor_id: e.id, executor_name: 'x', attempt: 1, kind: 'finished', at_ms: startedAt + after, outcome, exit_code: outcome === 'succeeded' ? 0 : 1,
    });
    bus.publishEvent(finished(web1, 'succeeded', 2_000));
    bus.publishEvent(finished(web2, 'failed', 40_000));
    await bus.idle();
    await recorder.stop();
    expect((await executions.get(viewer, id)).state).toBe('FAILED');

    const m = parsePromText(await metrics.text());
    expect(m.value('grid_executions_created_total', { job: 'deploy' })).toBe(1);
    expect(m.value('grid_executions_total', { job: 'deploy', state: 'FAILED' })).toBe(1);
    expect(m.value('grid_executions_total', { job: 'deploy', state: 'SUCCEEDED' })).toBeUndefined();
    expect(m.value('grid_tasks_total', { job: 'deploy', state: 'SUCCEEDED' })).toBe(1);
    expect(m.value('grid_tasks_total', { job: 'deploy', state: 'FAILED' })).toBe(1);
    // Released at Execute, claimed 250 ms later (the test's clock): both in the 0.25 s bucket.
    expect(m.value('grid_task_start_latency_seconds_count', { job: 'deploy' })).toBe(2);
    expect(m.value('grid_task_start_latency_seconds_sum', { job: 'deploy' })).toBeCloseTo(0.5);
    expect(m.value('grid_task_start_latency_seconds_bucket', { job: 'deploy', le: '0.1' })).toBe(0);
    expect(m.value('grid_task_start_latency_seconds_bucket', { job: 'deploy', le: '0.25' })).toBe(2);
    expect(m.value('grid_task_duration_seconds_sum', { job: 'deploy', state: 'SUCCEEDED' })).toBe(2);
    expect(m.value('grid_task_duration_seconds_sum', { job: 'deploy', state: 'FAILED' })).toBe(40);
    expect(m.value('grid_task_duration_seconds_bucket', { job: 'deploy', state: 'FAILED', le: '30' })).toBe(0);
    expect(m.value('grid_task_duration_seconds_bucket', { job: 'deploy', state: 'FAILED', le: '60' })).toBe(1);
    expect(m.value('grid_heartbeats_total', { result: 'accepted' })).toBe(2);
    expect(m.value('grid_heartbeats_total', { result: 'refused' })).toBe(1);
    expect(m.value('grid_executors', { state: 'ACTIVE' })).toBe(2);
    expect(m.value('grid_executors', { state: 'EXPIRED' })).toBe(1);
    expect(m.value('grid_executors', { state: 'STOPPED' })).toBe(0);
    // No label carries an execution's or an executor's id.
    const labels = [...m.families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    expect(labels.filter((v) => [id, web1.id, web2.id].includes(v))).toEqual([]);
  });
});
