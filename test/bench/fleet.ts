// A fleet of simulated executors in one process, for `make bench`:
//
//   node dist/test/bench/fleet.js --controller HOST:PORT --count N --prefix NAME --token REG
//        [--mode worker|heartbeat] [--groups a,b] [--concurrency 16] [--ping-interval 10]
//        [--register-concurrency 16] [--work-dir DIR]
//
// Every executor has its own identity (Register RPC with the registration token → id, secret,
// consumers), its own heartbeat loop (src/executor/heartbeat.ts) and, in worker mode, its own
// Worker (src/executor/worker.ts) pulling from its own consumers with a NoopRunner standing in
// for the host runner. The process shares one gRPC client and one NATS connection among them.
// In heartbeat mode there is no Worker (registration + heartbeat + consumers only).
//
// Talks to the parent over IPC: sends {type:'progress'}, {type:'ready'}, answers {type:'stats'};
// on {type:'stop'} it stops heartbeats, closes its connections and exits (no graceful drain).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { newUserKey } from '../../src/bus/authority.js';
import { connectBus } from '../../src/bus/connect.js';
import { GridClient } from '../../src/client/client.js';
import { Heartbeat } from '../../src/executor/heartbeat.js';
import { Worker } from '../../src/executor/worker.js';
import { groupsOf } from '../../src/domain/executor.js';
import { grpcLink } from '../../src/executor/link.js';
import { NoopRunner } from '../../src/runners/noop/index.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { VERSION } from '../../src/version.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const opt = (k: string, d = ''): string => args.get(k) ?? d;

const controller = opt('controller');
const count = Number(opt('count', '1'));
const prefix = opt('prefix', 'sim');
const mode = opt('mode', 'worker') as 'worker' | 'heartbeat';
const token = opt('token');
const groups = opt('groups').split(',').filter(Boolean);
const concurrency = Number(opt('concurrency', '16'));
const pingIntervalS = Number(opt('ping-interval', '10'));
const registerConcurrency = Number(opt('register-concurrency', '16'));

// Warnings and errors of thousands of executors: counted, the first few printed.
let printed = 0;
let firstError: string | undefined;
const quietLog: Logger = createLogger({
  level: 'warn',
  name: prefix,
  write: (line) => {
    firstError ??= line;
    if (printed++ < 5) process.stderr.write(line + '\n');
  },
});

const send = (m: unknown): void => {
  if (process.connected) process.send!(m);
};

interface Sim {
  id: string;
  name: string;
  heartbeat: Heartbeat;
  worker?: Worker;
}

const client = new GridClient({ address: controller, timeoutMs: 30_000, tls: { plaintext: true } });
const sims: Sim[] = [];
let beatsOk = 0;
let beatsFailed = 0;
let refused = 0;
const connections: NatsConnection[] = [];
const ownWorkDir = !args.has('work-dir');
const workDir = ownWorkDir ? mkdtempSync(join(tmpdir(), `grid-bench-fleet-${prefix}-`)) : opt('work-dir');

// Count heartbeat outcomes by wrapping the client's call for Heartbeat.
const heartbeatMethod = client.executors.heartbeat;
const callOriginal = client.call.bind(client);
client.call = (async (stub: object, method: unknown, req: unknown, timeoutMs?: number) => {
  if (method !== heartbeatMethod) return callOriginal(stub, method as never, req as never, timeoutMs);
  try {
    const res = await callOriginal(stub, method as never, req as never, timeoutMs);
    beatsOk++;
    return res;
  } catch (err) {
    beatsFailed++;
    firstError ??= (err as Error).message;
    throw err;
  }
}) as typeof client.call;

async function registerOne(i: number): Promise<void> {
  const name = `${prefix}-${i}`;
  const natsKey = newUserKey();
  let res;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await client.call(client.executors, client.executors.register, {
        registrationToken: token,
        name,
        groups,
        labels: {},
        runners: ['host'],
        concurrency,
        pingIntervalSeconds: pingIntervalS,
        version: VERSION,
        replace: true,
        executorId: '',
        executorSecret: '',
        natsUserKey: natsKey.publicKey, replaceSecret: '', tlsPublicKey: '',
      });
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  const heartbeat = new Heartbeat({
    link: grpcLink(client, res.executorId, res.executorSecret),
    intervalMs: pingIntervalS * 1000,
    status: () => ({ runningTasks: sim.worker?.runningTasks() ?? 0, load: 0, draining: false, running: sim.worker?.running() ?? [] }),
    onRefused: () => void refused++,
    log: quietLog,
  });
  const sim: Sim = { id: res.executorId, name, heartbeat };
  if (mode === 'worker') {
    // Each executor has its own NATS user and permissions, so its own connection.
    const nc = await connectBus({
      servers: res.nats?.servers ?? [],
      name: `grid-bench-fleet-${name}`,
      ...(res.nats?.userJwt ? { user: { jwt: res.nats.userJwt, seed: natsKey.seed }, inboxPrefix: res.nats.inboxPrefix } : {}),
    });
    connections.push(nc);
    sim.worker = new Worker({
      nc,
      client,
      executorId: res.executorId,
      executorSecret: res.executorSecret,
      executorName: name,
      jobConsumer: res.nats?.jobConsumer ?? '',
      poolConsumers: res.nats?.poolConsumers ?? [],
      groups: groupsOf({ groups }),
      runners: [new NoopRunner({ name: 'host' })],
      concurrency,
      workDir,
      logMaxBytes: 10 * 1024 * 1024,
      log: quietLog,
    });
  }
  sims.push(sim);
  heartbeat.start();
  await sim.worker?.start();
}

async function main(): Promise<void> {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let lastProgress = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      try {
        await registerOne(i);
      } catch (err) {
        failed++;
        firstError ??= `register ${prefix}-${i}: ${(err as Error).message}`;
      }
      if (performance.now() - lastProgress > 500) {
        lastProgress = performance.now();
        send({ type: 'progress', registered: sims.length });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, registerConcurrency) }, lane));
  send({
    type: 'ready',
    ids: sims.map((s) => s.id),
    names: sims.map((s) => s.name),
    registerMs: performance.now() - t0,
    failed,
    firstError,
  });
}

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  for (const s of sims) s.heartbeat.stop();
  // No graceful drain (it waits for every pull to expire): the bench only needs the process gone.
  await Promise.allSettled(connections.map((c) => c.close()));
  client.close();
  if (ownWorkDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(0);
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') send({ type: 'stats', beatsOk, beatsFailed, refused, firstError });
  else if (m.type === 'stop') void stop();
});
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());

main().catch((err: unknown) => {
  process.stderr.write(`fleet ${prefix}: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
