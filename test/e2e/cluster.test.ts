// GRID on clusters: a 3-node NATS JetStream cluster and a 3-member etcd cluster, the controller
// given every endpoint of both. Streams made by a controller with nats.replicas 1 are scaled to
// 3 by one with nats.replicas 3 (each change one log line); then two executors, registered with
// every NATS URL, run a job with a file on all and on any, and the logs come back. Every stream,
// the files bucket and the executors' consumers are kept by all three servers. Removing an
// executor revokes its NATS user on every server, not only the one the controller pushed to.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, type NatsUser } from '../../src/bus/connect.js';
import { DEFAULT_LIMITS, ensureStreams, FILES_STREAM } from '../../src/bus/setup.js';
import { consumers, STREAMS } from '../../src/bus/subjects.js';
import { readExecutorState, startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { cleanupProcesses, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

const GRID_STREAMS = [STREAMS.requests, STREAMS.jobs, STREAMS.events, STREAMS.logs, FILES_STREAM];

let servers: TestServers;
let nc: NatsConnection;
let jsm: JetStreamManager;
let controller: RunningController;
const executors: RunningExecutor[] = [];

beforeAll(async () => {
  servers = await startServers({ natsNodes: 3, etcdMembers: 3 });
  nc = await servers.connectNats('cluster-test');
  jsm = await jetstreamManager(nc);
}, 120_000);

afterAll(async () => {
  await nc?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

const endpoints = () => ({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, natsUrls: servers.natsUrls, etcdEndpoints: servers.etcdEndpoints });

/** num_replicas and how many peers besides the leader keep a stream (or one of its consumers). */
async function replicasOf(stream: string, consumer?: string): Promise<{ num: number; peers: number; text: string }> {
  const info = consumer ? await jsm.consumers.info(stream, consumer) : await jsm.streams.info(stream);
  const peers = info.cluster?.replicas?.length ?? 0;
  const text = `${consumer ? `${stream} > ${consumer}` : stream}: num_replicas=${info.config.num_replicas} cluster.replicas=${peers} leader=${info.cluster?.leader ?? '-'}`;
  return { num: info.config.num_replicas ?? 0, peers, text };
}

function cli(args: string[], as: keyof typeof TOKENS = 'operator'): Promise<RunResult> {
  return runCli(args, { address: controller.address, token: TOKENS[as], timeoutMs: 60_000 });
}

function ok(r: RunResult): string {
  expect(r, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toMatchObject({ code: 0 });
  return r.stdout;
}

describe('GRID on a 3-node NATS cluster and a 3-member etcd cluster', () => {
  it('nats.replicas 3 scales the streams and the files bucket an earlier controller made with 1 replica', async () => {
    const first = await startController(endpoints());
    for (const s of GRID_STREAMS) {
      const r = await replicasOf(s);
      console.log(`nats.replicas 1: ${r.text}`);
      expect(r.num, r.text).toBe(1);
    }
    expect(await first.stop()).toBe(0);

    controller = await startController({ ...endpoints(), config: { nats: { replicas: 3 } } });
    for (const s of GRID_STREAMS) {
      expect(controller.logs()).toMatch(new RegExp(`stream replicas changed to nats\\.replicas stream=${s} from=1 to=3`));
    }
    for (const s of GRID_STREAMS) {
      // A scaled stream lists its new peers once they have caught up.
      await expect.poll(async () => (await replicasOf(s)).peers, { timeout: 20_000, interval: 250 }).toBe(2);
      const r = await replicasOf(s);
      console.log(`nats.replicas 3: ${r.text}`);
      expect(r.num, r.text).toBe(3);
    }
    // More copies than the cluster has servers: NATS refuses, and the streams keep their 3.
    const refused = await ensureStreams(nc, { ...DEFAULT_LIMITS, replicas: 5 });
    expect(refused.map((c) => `${c.stream} ${c.from}→${c.to} ${c.refused ? 'refused' : 'changed'}`)).toEqual(GRID_STREAMS.map((s) => `${s} 3→5 refused`));
    console.log(`nats.replicas 5 on 3 servers: ${refused[0]!.refused}`);
    for (const s of GRID_STREAMS) expect((await replicasOf(s)).num).toBe(3);

    // What an operator sees: every stream R3, with a leader and two current followers.
    const health = ok(await cli(['health'], 'viewer'));
    console.log(`grid-cli health:\n${health}`);
    for (const s of GRID_STREAMS) expect(health).toMatch(new RegExp(`^  ${s} +\\d+ +[\\d.]+ (B|KiB|MiB) +R3 +\\S+ +\\S+ \\(current\\), \\S+ \\(current\\)$`, 'm'));
  }, 120_000);

  it('runs a job with a file on all and on any; executors get every NATS URL; their consumers have 3 replicas', async () => {
    for (const name of ['node-a', 'node-b']) {
      executors.push(await startExecutor({ controller: controller.address, name: uniqueName(name), config: { runners: ['host'] } }));
    }
    for (const e of executors) expect(readExecutorState(e.stateFile).nats_servers).toEqual(servers.natsUrls);

    const dir = tempDir('grid-e2e-cluster-');
    const template = join(dir, 'greeting.tmpl');
    writeFileSync(template, 'hello {{WHO}} from the cluster\n');
    const file = `${uniqueName('greeting')}.txt`;
    ok(await cli(['files', 'put', file, template], 'admin'));
    const job = uniqueName('cluster-hello');
    const def = join(dir, 'job.json');
    writeFileSync(def, JSON.stringify({
      name: job,
      command: ['cat', 'greeting.txt'],
      files: [{ name: file, path: 'greeting.txt', template: true }],
      env_vars: { secrets: [], args: [{ name: 'WHO', default: 'world' }] },
      timeout_seconds: 30,
    }));
    ok(await cli(['create', def], 'admin'));

    const all = JSON.parse(ok(await cli(['execute', job, '--target', 'all', '--arg', 'WHO=everyone', '--wait', '--output', 'json']))) as { id: string; state: string; tasks: unknown[] };
    expect(all.state).toBe('SUCCEEDED');
    expect(all.tasks).toHaveLength(2);
    const logs = ok(await cli(['getlogs', all.id])).trim().split('\n').sort();
    expect(logs).toEqual(executors.map((e) => `[${e.name}] hello everyone from the cluster`).sort());

    const any = JSON.parse(ok(await cli(['execute', job, '--target', 'any', '--wait', '--output', 'json']))) as { id: string; state: string; tasks: unknown[] };
    expect(any.state).toBe('SUCCEEDED');
    expect(any.tasks).toHaveLength(1);
    expect(ok(await cli(['getlogs', any.id])).trim()).toBe('hello world from the cluster');

    const consumerNames = [...executors.map((e) => [STREAMS.jobs, consumers.node(e.id)] as const), [STREAMS.events, consumers.recorder] as const, [STREAMS.requests, consumers.dispatcher] as const];
    for (const [stream, name] of consumerNames) {
      await expect.poll(async () => (await replicasOf(stream, name)).peers, { timeout: 20_000, interval: 250 }).toBe(2);
      console.log(`consumer ${(await replicasOf(stream, name)).text}`);
    }
  }, 180_000);

  it('removing an executor revokes its NATS user on every server of the cluster', async () => {
    const gone = executors[1]!;
    const state = readExecutorState(gone.stateFile);
    const user: NatsUser = { jwt: String(state.nats_user_jwt), seed: String(state.nats_user_seed) };
    const refused = async (url: string): Promise<boolean> => {
      try {
        await (await connectBus({ servers: [url], name: 'revoked?', user, connectTimeoutMs: 5_000 })).close();
        return false;
      } catch (err) {
        return /Authorization Violation/.test((err as Error).message);
      }
    };
    for (const url of servers.natsUrls) expect(await refused(url), url).toBe(false);
    ok(await cli(['executors', 'remove', gone.name], 'admin'));
    for (const url of servers.natsUrls) await expect.poll(() => refused(url), { timeout: 15_000, interval: 250 }).toBe(true);
    expect(controller.logs()).toMatch(new RegExp(`NATS user revoked executor=${gone.name}`));
  }, 60_000);
});
