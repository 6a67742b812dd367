// TLS on the gRPC hops: a recording proxy between grid-cli and the controller, and between an
// executor and the controller, reads a secret argument and the bearer token when gRPC runs in
// plaintext, and neither with TLS. Wrong CAs and plaintext clients get one clear line; an
// executor's client certificate works only while it is its executor's current one.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { UnauthenticatedError } from '../../src/errors.js';
import { grpcLink } from '../../src/executor/link.js';
import { readExecutorState, registerExecutor, startExecutor, writeExecutorConfig } from '../harness/executor-process.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import {
  cleanupProcesses,
  expectOneLineError,
  REGISTRATION_TOKEN,
  runCli,
  startController,
  tempDir,
  TOKENS,
  type RunningController,
} from '../harness/processes.js';
import { recordingProxy } from '../harness/recording-proxy.js';
import { makeCa } from '../harness/certs.js';
import { startServers, type TestServers } from '../harness/servers.js';

const MARKER = 'grid-tls-marker-7f3a9c1e';

let servers: TestServers;
let dir: string;
let jobFile: string;

beforeAll(async () => {
  servers = await startServers();
  dir = tempDir('grid-grpc-tls-');
  jobFile = join(dir, 'job.json');
  writeFileSync(
    jobFile,
    JSON.stringify({
      name: 'tls-secret',
      description: 'reads a secret from its environment',
      command: ['sh', '-c', 'test -n "$SECRET" && echo secret-present'],
      env_vars: { args: [], secrets: [{ name: 'SECRET', description: 'a secret value' }] },
    }),
  );
}, 60_000);

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

/** A controller, an executor and grid-cli, each gRPC hop through its own recording proxy. */
async function runThroughProxies(tls: boolean): Promise<{ cliSeen: string; cliHeaders: string[]; executorSeen: string; controller: RunningController }> {
  const controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    ...(tls ? {} : { config: { tls: { enabled: false } } }),
  });
  const port = Number(controller.address.split(':').pop());
  const cliProxy = await recordingProxy(port);
  const executorProxy = await recordingProxy(port);
  const plain = tls ? {} : { GRID_PLAINTEXT: 'true' };
  try {
    const name = tls ? 'sealed-1' : 'open-1';
    const exec = await startExecutor({ name, controller: executorProxy.address, config: tls ? {} : { plaintext: true } });
    const cli = (args: string[], token: string = TOKENS.operator) => runCli(args, { address: cliProxy.address, token, env: plain });
    const created = await cli(['create', jobFile, '--replace'], TOKENS.admin);
    expect(created.code, created.stderr).toBe(0);
    const run = await cli(['execute', 'tls-secret', '--target', `node:${name}`, '--arg', `SECRET=${MARKER}`, '--wait'], TOKENS.operator);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toMatch(/State:\s+SUCCEEDED/);
    await exec.stop();
    return { cliSeen: cliProxy.seen(), cliHeaders: cliProxy.http2Headers(), executorSeen: executorProxy.seen(), controller };
  } finally {
    await Promise.all([cliProxy.close(), executorProxy.close()]);
    await controller.stop();
  }
}

describe('gRPC over TLS', () => {
  it('a recording proxy reads the secret and the token in plaintext gRPC, and neither with TLS', async () => {
    const open = await runThroughProxies(false);
    // The proxy sees the traffic: Execute carries the secret and the token (in the HPACK-coded
    // headers, which a man in the middle decodes as easily), BeginTask the secret.
    expect(open.cliSeen).toContain(MARKER);
    expect(open.cliHeaders).toContain(`authorization: Bearer ${TOKENS.operator}`);
    expect(open.executorSeen).toContain(MARKER);

    const sealed = await runThroughProxies(true);
    expect(sealed.cliSeen.length).toBeGreaterThan(1000);
    expect(sealed.executorSeen.length).toBeGreaterThan(1000);
    for (const seen of [sealed.cliSeen, sealed.executorSeen]) {
      expect(seen).not.toContain(MARKER);
      expect(seen).not.toContain(TOKENS.operator);
      expect(seen).not.toContain(TOKENS.admin);
    }
    expect(sealed.cliHeaders).toEqual([]);
    expect(sealed.controller.logs()).toMatch(/controller ready address=\S+ auth=tokens tls=on/);
  }, 120_000);

  describe('refusals', () => {
    let controller: RunningController;
    let otherCa: string;

    beforeAll(async () => {
      controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
      otherCa = makeCa(dir, 'not-grid').caFile;
    });

    afterAll(async () => {
      await controller?.stop();
    });

    it('grid-cli with the wrong CA, and in plaintext against the TLS port, each get one line and exit non-zero', async () => {
      const ok = await runCli(['list'], { address: controller.address, token: TOKENS.viewer });
      expect(ok.code, ok.stderr).toBe(0);

      const wrongCa = await runCli(['list'], { address: controller.address, token: TOKENS.viewer, env: { GRID_CA_FILE: otherCa } });
      expect(expectOneLineError(wrongCa, 1)).toMatch(/^error: cannot connect to the controller at 127\.0\.0\.1:\d+: its certificate is not signed by the CA in ca_file; set ca_file \(or GRID_CA_FILE\)/);

      const plain = await runCli(['list'], { address: controller.address, token: TOKENS.viewer, env: { GRID_PLAINTEXT: 'true' } });
      expect(expectOneLineError(plain, 1)).toMatch(/^error: cannot connect to the controller at 127\.0\.0\.1:\d+: it did not answer plaintext gRPC, so it probably serves TLS: remove plaintext/);
    });

    it('executor register with the wrong CA is refused with one line, before anything is sent', async () => {
      const files = writeExecutorConfig({ name: 'wrong-ca', controller: controller.address });
      const r = await registerExecutor(files.configFile, { env: { GRID_CA_FILE: otherCa } });
      expect(expectOneLineError(r, 1)).toMatch(/^executor: cannot connect to the controller at 127\.0\.0\.1:\d+: its certificate is not signed by the CA in ca_file/);
      expect(controller.logs()).not.toMatch(/name=wrong-ca/);
    });

    it('an executor call needs its own current certificate: none, another executor\'s, a removed executor\'s and a replaced one are refused', async () => {
      const a = await registerDirect(controller.address, { name: 'cert-a', registrationToken: REGISTRATION_TOKEN });
      const b = await registerDirect(controller.address, { name: 'cert-b', registrationToken: REGISTRATION_TOKEN });
      const beat = (c: GridClient, r: { executorId: string; executorSecret: string }) =>
        c.call(c.executors, c.executors.heartbeat, { executorId: r.executorId, executorSecret: r.executorSecret, version: 't', runningTasks: 0, load: 0, draining: false, running: [] });
      const noCert = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls() });
      try {
        // With its own certificate, the call works.
        await expect(beat(a.client, a.res)).resolves.toBeDefined();
        // The right id and secret without a certificate, or with another executor's, are not enough.
        await expect(beat(noCert, a.res)).rejects.toThrow(/cert-a .*no client certificate issued by the controller's CA/);
        await expect(beat(b.client, a.res)).rejects.toThrow(/issued to .*, not to this executor/);

        // Renewal: the new certificate works, the previous one still does (calls in flight),
        // and after a second renewal the first one is refused.
        const renew = async (c: GridClient, key: { publicKeyPem: string }) =>
          (await c.call(c.executors, c.executors.renewCertificate, { executorId: a.res.executorId, executorSecret: a.res.executorSecret, tlsPublicKey: key.publicKeyPem })).tlsCertificate;
        const { newClientKey } = await import('../../src/tls/ca.js');
        const k2 = await newClientKey();
        const c2 = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls({ tls_cert: await renew(a.client, k2), tls_key: k2.keyPem }) });
        await expect(beat(c2, a.res)).resolves.toBeDefined();
        await expect(beat(a.client, a.res)).resolves.toBeDefined();
        const k3 = await newClientKey();
        const c3 = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls({ tls_cert: await renew(c2, k3), tls_key: k3.keyPem }) });
        await expect(beat(c3, a.res)).resolves.toBeDefined();
        await expect(beat(a.client, a.res)).rejects.toThrow(/client certificate [0-9a-f]+ is no longer valid/);

        // Removed: its certificate is refused, even with the right secret.
        const removed = await runCli(['executors', 'remove', 'cert-a'], { address: controller.address, token: TOKENS.admin });
        expect(removed.code, removed.stderr).toBe(0);
        const err = await beat(c3, a.res).catch((e: Error) => e);
        expect(err).toBeInstanceOf(UnauthenticatedError);
        expect((err as Error).message).toMatch(/was removed from the registry; its client certificate is no longer accepted/);
        expect(controller.logs()).toMatch(/executor call refused: certificate of an unknown or removed executor/);
        c2.close();
        c3.close();
      } finally {
        noCert.close();
        a.client.close();
        b.client.close();
      }
    });

    it('a heartbeat stream needs its executor\'s own current certificate, for as long as it is open', async () => {
      const a = await registerDirect(controller.address, { name: 'stream-a', registrationToken: REGISTRATION_TOKEN });
      const b = await registerDirect(controller.address, { name: 'stream-b', registrationToken: REGISTRATION_TOKEN });
      const status = { version: 't', runningTasks: 0, load: 0, draining: false, running: [] };
      const linkOf = (c: GridClient) => grpcLink(c, a.res.executorId, a.res.executorSecret);
      const noCert = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls() });
      const clients = [noCert, a.client, b.client];
      const renew = async (c: GridClient, key: { publicKeyPem: string }) =>
        (await c.call(c.executors, c.executors.renewCertificate, { executorId: a.res.executorId, executorSecret: a.res.executorSecret, tlsPublicKey: key.publicKeyPem })).tlsCertificate;
      const { newClientKey } = await import('../../src/tls/ca.js');
      try {
        // Opened with its own certificate, the stream carries heartbeats.
        const own = linkOf(a.client);
        expect((await own.heartbeat(status, 5_000)).state).toBe('ACTIVE');
        // The right id and secret without a certificate, or with another executor's, open none.
        await expect(linkOf(noCert).heartbeat(status, 5_000)).rejects.toThrow(/stream-a .*no client certificate issued by the controller's CA/);
        await expect(linkOf(b.client).heartbeat(status, 5_000)).rejects.toThrow(/issued to .*, not to this executor/);

        // Two renewals later the stream's certificate is no longer valid: the open stream ends,
        // and the stream it would open again with that certificate is refused.
        const k2 = await newClientKey();
        const c2 = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls({ tls_cert: await renew(a.client, k2), tls_key: k2.keyPem }) });
        clients.push(c2);
        const k3 = await newClientKey();
        const c3 = new GridClient({ address: controller.address, timeoutMs: 10_000, tls: testClientTls({ tls_cert: await renew(c2, k3), tls_key: k3.keyPem }) });
        clients.push(c3);
        const stale = await own.heartbeat(status, 5_000).catch((e: Error) => e);
        expect(stale).toBeInstanceOf(UnauthenticatedError);
        expect((stale as Error).message).toMatch(/client certificate [0-9a-f]+ is no longer valid/);

        // With the current certificate it works, until the executor is removed: then the open
        // stream is ended at once, UNAUTHENTICATED, without waiting for a heartbeat.
        const current = linkOf(c3);
        expect((await current.heartbeat(status, 5_000)).state).toBe('ACTIVE');
        const raw = c3.duplex(c3.executors, c3.executors.heartbeats);
        const ended = new Promise<{ code?: number; details?: string }>((resolve) => raw.call.on('error', resolve));
        let answered = 0;
        raw.call.on('data', () => answered++);
        raw.call.write({ executorId: a.res.executorId, executorSecret: a.res.executorSecret, ...status });
        await expect.poll(() => answered).toBe(1);
        const removed = await runCli(['executors', 'remove', 'stream-a'], { address: controller.address, token: TOKENS.admin });
        expect(removed.code, removed.stderr).toBe(0);
        expect(await ended).toMatchObject({ code: 16, details: expect.stringMatching(/was removed from the registry/) });
        await expect(current.heartbeat(status, 5_000)).rejects.toBeInstanceOf(UnauthenticatedError);
      } finally {
        for (const c of clients) c.close();
      }
    });

    it('a real executor keeps its certificate and key in its 0600 state file, and runs with them', async () => {
      const exec = await startExecutor({ name: 'cert-real', controller: controller.address });
      const state = readExecutorState(exec.stateFile) as { tls_cert?: string; tls_key?: string };
      expect(state.tls_cert).toMatch(/^-----BEGIN CERTIFICATE-----/);
      expect(state.tls_key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      const subject = execFileSync('openssl', ['x509', '-noout', '-subject', '-ext', 'extendedKeyUsage'], { input: state.tls_cert }).toString();
      expect(subject).toContain(`CN = ${exec.id}`);
      expect(subject).toContain('TLS Web Client Authentication');
      await exec.stop();
    });
  });
});
