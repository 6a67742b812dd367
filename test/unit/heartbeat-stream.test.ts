// Heartbeats on one stream per executor (ExecutorService.Heartbeats), through a real grpc-js
// server and the executor's own link, over the registry on in-memory stores: the stream is bound
// to the executor that opened it, ends when the executor is removed or registered again, carries
// stop orders, and an executor falls back to a Heartbeat call each on a controller without it.

import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryBus } from '../../src/bus/memory.js';
import { GridClient } from '../../src/client/client.js';
import { Authenticator } from '../../src/controller/auth.js';
import { heartbeatStreams } from '../../src/controller/doors/grpc/heartbeat-stream.js';
import { executorService } from '../../src/controller/doors/grpc/executor-service.js';
import type { HandlerContext } from '../../src/controller/doors/grpc/handlers.js';
import { ExecutorRegistry } from '../../src/controller/executors.js';
import type { ExecutorUseCases } from '../../src/controller/use-cases.js';
import { UnauthenticatedError, UnavailableError } from '../../src/errors.js';
import { grpcLink, type HeartbeatStatus } from '../../src/executor/link.js';
import { ExecutorServiceService, type HeartbeatRequest, type HeartbeatResponse, type ExecutorServiceServer } from '../../src/gen/grid/v1/executor.js';
import { ExecutorState } from '../../src/gen/grid/v1/types.js';
import { MemoryExecutorStore, MemoryLeases } from '../../src/store/memory.js';
import { createLogger } from '../../src/util/log.js';

const REGISTRATION_TOKEN = 'reg-token';
const log = createLogger({ level: 'error', name: 'test', write: () => {} });
const status0: HeartbeatStatus = { version: '1.0', runningTasks: 0, load: 0, draining: false, running: [] };

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A controller's ExecutorService on a random port (only what heartbeats need), and a client. */
async function rig(o: { stream?: boolean } = {}) {
  const leases = new MemoryLeases();
  const store = new MemoryExecutorStore(leases);
  const natsUsers = { executorUser: async () => undefined, revoke: async () => {} };
  const registry = new ExecutorRegistry(store, leases, new MemoryBus(), natsUsers, {
    registrationTokens: [{ name: 'test', token: REGISTRATION_TOKEN, groups: [] }],
    pingDeadlineSeconds: 30,
    natsAdvertise: [],
  }, log);
  /** Stop orders the fake executions answer: every task of an execution named "cancelled-…". */
  const executions = {
    tasksToStop: async (_id: string, running: Array<{ executionId: string; taskKey: string }>) =>
      running.filter((r) => r.executionId.startsWith('cancelled-')).map((r) => ({ ...r, reason: 'cancelled', note: 'cancelled by ops' })),
  };
  const uc = { registry, executions } as unknown as ExecutorUseCases;
  const ctx: HandlerContext = { auth: new Authenticator('tokens', []), log };
  const unaryCalls: string[] = [];
  const full = executorService(ctx, uc, heartbeatStreams(ctx, uc));
  const impl: Partial<ExecutorServiceServer> = {
    heartbeat: (call, cb) => {
      unaryCalls.push(call.request.executorId);
      full.heartbeat(call, cb);
    },
    ...(o.stream === false ? {} : { heartbeats: full.heartbeats }),
  };
  const server = new Server();
  server.addService(ExecutorServiceService, impl as ExecutorServiceServer);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const client = new GridClient({ address: `127.0.0.1:${port}`, timeoutMs: 5_000, tls: { plaintext: true } });
  cleanups.push(() => server.forceShutdown(), () => client.close());

  const register = async (name: string, again?: { id: string; secret: string }) => {
    const r = await registry.register({
      registrationToken: REGISTRATION_TOKEN, name, groups: [], labels: {}, runners: ['host'], concurrency: 1, pingIntervalSeconds: 1, version: '1.0', replace: false,
      ...(again ? { executorId: again.id, executorSecret: again.secret } : {}),
    });
    return { id: r.executorId, secret: r.executorSecret };
  };

  /** A raw Heartbeats stream: send requests, read answers, see how it ended. */
  const rawStream = () => {
    const { call } = client.duplex(client.executors, client.executors.heartbeats);
    const answers: HeartbeatResponse[] = [];
    const ended = new Promise<ServiceError | undefined>((resolve) => {
      call.on('error', (e: ServiceError) => resolve(e));
      call.on('end', () => resolve(undefined));
    });
    call.on('data', (r: HeartbeatResponse) => answers.push(r));
    cleanups.push(() => call.cancel());
    const send = (r: Partial<HeartbeatRequest>) => call.write({ executorId: '', executorSecret: '', version: '1.0', runningTasks: 0, load: 0, draining: false, running: [], ...r });
    return { call, answers, ended, send };
  };

  /** A raw stream that `e` opened and had its first heartbeat answered on. */
  const openAs = async (e: { id: string; secret: string }) => {
    const s = rawStream();
    s.send({ executorId: e.id, executorSecret: e.secret });
    await until(() => s.answers.length === 1, 'the first answer');
    return s;
  };

  return { registry, store, leases, client, register, rawStream, openAs, unaryCalls };
}

async function until(ok: () => boolean, what: string, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('Heartbeats: one stream per executor', () => {
  it('carries every heartbeat on one stream, authenticated once, and makes the executor ACTIVE', async () => {
    const { register, client, store, unaryCalls } = await rig();
    const a = await register('exec-a');
    const link = grpcLink(client, a.id, a.secret);
    for (let i = 0; i < 3; i++) expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    expect(unaryCalls).toEqual([]);
    expect((await store.get(a.id))?.state).toBe('ACTIVE');
    link.closeHeartbeats?.();
  });

  it('refuses a stream opened with a wrong secret, and a message for another executor on a bound stream', async () => {
    const { register, rawStream, openAs } = await rig();
    const a = await register('exec-a');
    const b = await register('exec-b');

    const wrong = rawStream();
    wrong.send({ executorId: a.id, executorSecret: b.secret });
    const refused = await wrong.ended;
    expect(refused?.code).toBe(status.UNAUTHENTICATED);
    expect(refused?.details).toMatch(/the executor secret was not accepted/);
    expect(wrong.answers).toEqual([]);

    // Bound to a: a message naming b, even with b's own secret, ends the stream.
    const s = await openAs(a);
    s.send({ executorId: b.id, executorSecret: b.secret });
    const ended = await s.ended;
    expect(ended?.code).toBe(status.UNAUTHENTICATED);
    expect(ended?.details).toMatch(new RegExp(`belongs to executor ${a.id}`));
    expect(s.answers).toHaveLength(1);
  });

  it('ends an open stream when its executor is removed, at once; the executor is refused', async () => {
    const { register, openAs, registry, client } = await rig();
    const a = await register('exec-a');
    const s = await openAs(a);
    await registry.remove({ name: 'admin', role: 'admin', groups: [] }, a.id);
    const ended = await s.ended; // no further heartbeat sent
    expect(ended?.code).toBe(status.UNAUTHENTICATED);
    expect(ended?.details).toMatch(/was removed from the registry/);
    // The executor's link reports it as a refusal (the agent stops), as for a Heartbeat call.
    await expect(grpcLink(client, a.id, a.secret).heartbeat(status0, 2_000)).rejects.toBeInstanceOf(UnauthenticatedError);
  });

  it('ends an open stream when the executor registers again; the link opens another and authenticates again', async () => {
    const { register, openAs, client, unaryCalls } = await rig();
    const a = await register('exec-a');
    const s = await openAs(a);
    const link = grpcLink(client, a.id, a.secret);
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');

    await register('exec-a', a);
    expect((await s.ended)?.code).toBe(status.UNAVAILABLE);
    // The link's stream was ended too: its next heartbeat goes on a new one, without failing.
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    expect(unaryCalls).toEqual([]);
  });

  it('ends a stream at its next heartbeat when another replica changed the executor\'s credentials', async () => {
    const { register, openAs, store } = await rig();
    const a = await register('exec-a');
    const s = await openAs(a);
    // As a re-registration elsewhere writes it (no word reaches this replica but the record).
    await store.update(a.id, (cur) => ({ ...cur, nats_user_key: 'UNEWKEY' }));
    s.send({ executorId: a.id });
    const ended = await s.ended;
    expect(ended?.code).toBe(status.UNAVAILABLE);
    expect(ended?.details).toMatch(/registered again or its certificate renewed/);
    expect(s.answers).toHaveLength(1);
  });

  it('answers a heartbeat etcd did not take in time as not recorded, and keeps the stream for the next', async () => {
    const { register, openAs, leases, client } = await rig();
    const a = await register('exec-a');
    const s = await openAs(a);
    const keepAlive = leases.keepAlive.bind(leases);
    leases.keepAlive = () => Promise.reject(new UnavailableError('etcd did not answer a lease keep-alive in time'));
    s.send({ executorId: a.id });
    await until(() => s.answers.length === 2, 'the second answer');
    expect(s.answers[1]!.notRecorded).toMatch(/did not answer a lease keep-alive in time/);
    leases.keepAlive = keepAlive;
    s.send({ executorId: a.id });
    await until(() => s.answers.length === 3, 'the third answer');
    expect(s.answers[2]!.notRecorded).toBe('');
    expect(s.answers[2]!.state).toBe(ExecutorState.EXECUTOR_STATE_ACTIVE);

    // Through the executor's link: that heartbeat fails, and the next goes on the same stream.
    const link = grpcLink(client, a.id, a.secret);
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    const opened = vi.spyOn(client, 'duplex');
    leases.keepAlive = () => Promise.reject(new UnavailableError('etcd did not answer a lease keep-alive in time'));
    await expect(link.heartbeat(status0, 2_000)).rejects.toThrow(/could not record the heartbeat/);
    leases.keepAlive = keepAlive;
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    expect(opened).not.toHaveBeenCalled();
    link.closeHeartbeats?.();
  });

  it('answers each heartbeat with the stop orders for the tasks it says it runs', async () => {
    const { register, client } = await rig();
    const a = await register('exec-a');
    const link = grpcLink(client, a.id, a.secret);
    const running = [
      { executionId: 'cancelled-1', taskKey: 'node:exec-a', attempt: 1 },
      { executionId: 'running-2', taskKey: 'node:exec-a', attempt: 1 },
    ];
    const res = await link.heartbeat({ ...status0, runningTasks: 2, running }, 2_000);
    expect(res.stop).toEqual([{ executionId: 'cancelled-1', taskKey: 'node:exec-a', reason: 'cancelled', note: 'cancelled by ops' }]);
    expect((await link.heartbeat(status0, 2_000)).stop).toEqual([]);
  });

  it('falls back to a Heartbeat call each on a controller without the stream', async () => {
    const { register, client, unaryCalls, store } = await rig({ stream: false });
    const a = await register('exec-a');
    const link = grpcLink(client, a.id, a.secret);
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    expect((await link.heartbeat(status0, 2_000)).state).toBe('ACTIVE');
    expect(unaryCalls).toEqual([a.id, a.id]);
    expect((await store.get(a.id))?.state).toBe('ACTIVE');
  });
});
