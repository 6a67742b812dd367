// A fleet of simulated executors in one process, for `make bench`:
//
//   node dist/test/bench/fleet.js --controller HOST:PORT --ca-file CA --count N --prefix NAME
//        --token REG [--mode worker|heartbeat] [--groups a,b] [--concurrency 16]
//        [--ping-interval 10] [--register-concurrency 16] [--work-dir DIR]
//
// Every executor has its own identity, made as `executor register` makes it: a TLS key and a
// NATS user key of its own, then the Register RPC with the registration token → id, secret,
// consumers and a client certificate signed by the controller's CA. From then on it talks to the
// controller over its own gRPC channel (TLS with that certificate: the controller checks it on
// every executor call), runs its own heartbeat loop (src/executor/heartbeat.ts) and, in worker
// mode, its own Worker (src/executor/worker.ts) on its own NATS connection (TLS, its own user)
// pulling from its own consumers, with a NoopRunner standing in for the host runner. Only the
// Register calls share a channel (they carry no client certificate, as a first registration).
// In heartbeat mode there is no Worker (registration + heartbeat + consumers only).
//
// Talks to the parent over IPC: sends {type:'progress'}, {type:'ready'}, answers {type:'stats'}
// and {type:'work'} (heartbeat mode: start the Workers now; {type:'work-progress'} while they
// start, then {type:'working'});
// on {type:'stop'} it stops heartbeats, closes its connections and exits (no graceful drain).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { newClientKey } from '../../src/tls/keys.js';
import type { RegisterResponse } from '../../src/gen/grid/v1/executor.js';
import { createLogger, type Logger } from '../../src/util/log.js';
import { VERSION } from '../../src/version.js';

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i]!.replace(/^--/, ''), process.argv[i + 1] ?? '');
const opt = (k: string, d = ''): string => args.get(k) ?? d;

const controller = opt('controller');
const caPem = readFileSync(opt('ca-file'), 'utf8');
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
  client: GridClient;
  heartbeat: Heartbeat;
  /** What Register answered, and the NATS user's seed (its public key went with Register). */
  registered: RegisterResponse;
  natsSeed: string;
  worker?: Worker;
}

// Register calls only: verifies the controller, presents no client certificate. 120 s: a call may
// wait its turn behind a whole fleet's at the controller.
const registrar = new GridClient({ address: controller, timeoutMs: 120_000, tls: { caPem } });
const sims: Sim[] = [];
let beatsOk = 0;
let beatsFailed = 0;
let refused = 0;
const connections: NatsConnection[] = [];
const ownWorkDir = !args.has('work-dir');
const workDir = ownWorkDir ? mkdtempSync(join(tmpdir(), `grid-bench-fleet-${prefix}-`)) : opt('work-dir');

/** An executor's own client: its own channel and client certificate (heartbeats are counted by onResult). */
function executorClient(certPem: string, keyPem: string): GridClient {
  return new GridClient({ address: controller, timeoutMs: 30_000, tls: { caPem, certPem, keyPem } });
}

async function registerOne(i: number): Promise<void> {
  const name = `${prefix}-${i}`;
  const natsKey = newUserKey();
  const tlsKey = await newClientKey();
  let res;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await registrar.call(registrar.executors, registrar.executors.register, {
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
        natsUserKey: natsKey.publicKey,
        replaceSecret: '',
        tlsPublicKey: tlsKey.publicKeyPem,
      });
      break;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
  if (!res.tlsCertificate) throw new Error(`register ${name}: the controller issued no client certificate (is its gRPC TLS off?)`);
  const client = executorClient(res.tlsCertificate, tlsKey.keyPem);
  const heartbeat = new Heartbeat({
    link: grpcLink(client, res.executorId, res.executorSecret, { heartbeatStream: process.env['GRID_BENCH_HEARTBEAT'] !== 'unary' }),
    intervalMs: pingIntervalS * 1000,
    status: () => ({ runningTasks: sim.worker?.runningTasks() ?? 0, load: 0, draining: false, running: sim.worker?.running() ?? [] }),
    onRefused: () => void refused++,
    // Heartbeat outcomes, whichever way they travel (one stream per executor, or a call each).
    onResult: (accepted) => void (accepted ? beatsOk++ : beatsFailed++),
    log: quietLog,
  });
  const sim: Sim = { id: res.executorId, name, client, heartbeat, registered: res, natsSeed: natsKey.seed };
  sims.push(sim);
  heartbeat.start();
  if (mode === 'worker') await startWorker(sim);
}

/** The executor's NATS connection (its own user, so its own connection) and Worker. */
async function startWorker(sim: Sim): Promise<void> {
  if (sim.worker) return;
  const res = sim.registered;
  const nc = await connectBus({
    servers: res.nats?.servers ?? [],
    name: `grid-bench-fleet-${sim.name}`,
    ...(res.nats?.userJwt ? { user: { jwt: res.nats.userJwt, seed: sim.natsSeed }, inboxPrefix: res.nats.inboxPrefix } : {}),
    // NATS over TLS, verified with the CA the controller hands over at Register.
    ...(res.nats?.tlsCa ? { caPem: res.nats.tlsCa } : {}),
  });
  connections.push(nc);
  sim.worker = new Worker({
    nc,
    client: sim.client,
    executorId: res.executorId,
    executorSecret: res.executorSecret,
    executorName: sim.name,
    jobConsumer: res.nats?.jobConsumer ?? '',
    poolConsumers: res.nats?.poolConsumers ?? [],
    groups: groupsOf({ groups }),
    runners: [new NoopRunner({ name: 'host' })],
    concurrency,
    workDir,
    logMaxBytes: 10 * 1024 * 1024,
    log: quietLog,
  });
  await sim.worker.start();
}

/** Heartbeat mode, on {type:'work'}: give every executor its Worker now (the 10,000-executor fan-out). */
async function startWorkers(): Promise<void> {
  const t0 = performance.now();
  let next = 0;
  let failed = 0;
  let lastProgress = 0;
  const lane = async () => {
    while (next < sims.length) {
      const sim = sims[next++]!;
      try {
        await startWorker(sim);
      } catch (err) {
        failed++;
        firstError ??= `worker ${sim.name}: ${(err as Error).message}`;
      }
      if (performance.now() - lastProgress > 500) {
        lastProgress = performance.now();
        send({ type: 'work-progress', workers: sims.filter((s) => s.worker).length });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, registerConcurrency) }, lane));
  send({ type: 'working', workers: sims.filter((s) => s.worker).length, failed, ms: performance.now() - t0, firstError });
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
  for (const s of sims) s.client.close();
  registrar.close();
  if (ownWorkDir) rmSync(workDir, { recursive: true, force: true });
  process.exit(0);
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'stats') send({ type: 'stats', beatsOk, beatsFailed, refused, firstError, rssBytes: process.memoryUsage().rss });
  else if (m.type === 'work') void startWorkers();
  else if (m.type === 'stop') void stop();
});
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());

main().catch((err: unknown) => {
  process.stderr.write(`fleet ${prefix}: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
