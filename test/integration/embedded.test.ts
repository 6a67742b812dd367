// Integration tests for the embedded cluster: real nats-server and etcd, started, used, stopped.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Etcd3 } from 'etcd3';
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { startEmbeddedCluster, type EmbeddedCluster, type EmbeddedServerName, type SupervisionEvent } from '../../src/embedded/index.js';
import { startServers, uniqueName } from '../harness/servers.js';

function isRunning(pid: number): boolean {
  try {
    // A zombie (exited, not yet reaped) has an empty cmdline; count it as gone.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').length > 0;
  } catch {
    return false;
  }
}

describe('test harness servers', () => {
  it('serves JetStream and etcd, then leaves nothing behind', async () => {
    const servers = await startServers();
    try {
      const nc = await servers.connectNats();
      try {
        const jsm = await jetstreamManager(nc);
        const name = uniqueName('GRID_TEST').replace(/-/g, '_');
        await jsm.streams.add({ name, subjects: [`${name}.>`] });
        expect((await jsm.streams.info(name)).config.name).toBe(name);
        expect(await jsm.streams.delete(name)).toBe(true);
      } finally {
        await nc.close();
      }

      const etcd = new Etcd3({ hosts: servers.etcdEndpoint });
      try {
        const key = uniqueName('/grid-test/key');
        await etcd.put(key).value('hello');
        expect(await etcd.get(key).string()).toBe('hello');
      } finally {
        etcd.close();
      }
    } finally {
      await servers.stop();
    }
    expect(isRunning(servers.natsPid)).toBe(false);
    expect(isRunning(servers.etcdPid)).toBe(false);
    expect(existsSync(servers.dir)).toBe(false);
    await servers.stop(); // idempotent
  });
});

describe('startEmbeddedCluster', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'grid-test-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  function track(cluster: EmbeddedCluster): EmbeddedCluster {
    cleanup.push(() => cluster.stop());
    return cluster;
  }

  it('reuses the same ports on a later start', async () => {
    const dataDir = tempDir();
    const first = track(await startEmbeddedCluster({ dataDir }));
    await first.stop();
    const second = track(await startEmbeddedCluster({ dataDir }));
    expect(second.natsUrl).toBe(first.natsUrl);
    expect(second.etcdEndpoint).toBe(first.etcdEndpoint);
    expect(JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8'))).toMatchObject({
      nats: first.nats.port,
      etcdClient: first.etcd.clientPort,
    });
  });

  it('finds servers left running by a crashed controller and replaces them', async () => {
    const dataDir = tempDir();
    // The first cluster is never stopped and no longer supervised: as if its controller had been killed with -9.
    const orphan = track(await startEmbeddedCluster({ dataDir }));
    await orphan.halt();
    const next = track(await startEmbeddedCluster({ dataDir }));

    expect(isRunning(orphan.nats.pid)).toBe(false);
    expect(isRunning(orphan.etcd.pid)).toBe(false);
    expect(next.nats.pid).not.toBe(orphan.nats.pid);
    expect(next.natsUrl).toBe(orphan.natsUrl); // the ports came free and were reused
    await orphan.nats.exited;
    await orphan.etcd.exited;

    // The replacements work.
    const nc = await connect({ servers: next.natsUrl });
    await (await jetstreamManager(nc)).getAccountInfo();
    await nc.close();
    const etcd = new Etcd3({ hosts: next.etcdEndpoint });
    await etcd.put('k').value('v');
    expect(await etcd.get('k').string()).toBe('v');
    etcd.close();

    await next.stop();
    expect(isRunning(next.nats.pid)).toBe(false);
    expect(isRunning(next.etcd.pid)).toBe(false);
    expect(existsSync(join(dataDir, 'nats-server.pid'))).toBe(false);
  });

  it('restarts a server that dies on the same ports and data, with backoff, and reports each death and restart', async () => {
    const dataDir = tempDir();
    const events: SupervisionEvent<EmbeddedServerName>[] = [];
    const cluster = track(await startEmbeddedCluster({ dataDir, onEvent: (e) => events.push(e) }));
    const etcd = new Etcd3({ hosts: cluster.etcdEndpoint });
    cleanup.push(() => etcd.close());
    await etcd.put('kept').value('across restarts');
    const nc = await connect({ servers: cluster.natsUrl, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    cleanup.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'KEPT', subjects: ['kept.>'] });

    const firstEtcd = cluster.etcd.pid;
    process.kill(firstEtcd, 'SIGKILL');
    await until(() => events.some((e) => e.type === 'restarted' && e.server === 'etcd'));
    expect(events.map((e) => e.type)).toEqual(['exited', 'restarted']);
    expect(events[0]).toMatchObject({ server: 'etcd', pid: firstEtcd, signal: 'SIGKILL', restartInMs: 500, attempt: 1, flapping: false });
    expect(cluster.etcd.pid).not.toBe(firstEtcd);
    expect(cluster.etcd.endpoint).toBe(cluster.etcdEndpoint);
    expect(readFileSync(join(dataDir, 'etcd.pid'), 'utf8').trim()).toBe(String(cluster.etcd.pid));
    expect(await etcd.get('kept').string()).toBe('across restarts'); // same data dir

    const firstNats = cluster.nats.pid;
    process.kill(firstNats, 'SIGKILL');
    await until(() => events.some((e) => e.type === 'restarted' && e.server === 'nats'));
    expect(cluster.nats.pid).not.toBe(firstNats);
    expect(cluster.nats.url).toBe(cluster.natsUrl);
    expect(readFileSync(join(dataDir, 'nats-server.pid'), 'utf8').trim()).toBe(String(cluster.nats.pid));
    // The client reconnects by itself; the stream is still there (same store dir).
    await until(async () => (await jsm.streams.info('KEPT').catch(() => undefined)) !== undefined);

    // A second quick death of the same server backs off longer.
    process.kill(cluster.etcd.pid, 'SIGKILL');
    await until(() => events.filter((e) => e.type === 'restarted' && e.server === 'etcd').length === 2);
    expect(events.filter((e) => e.type === 'exited' && e.server === 'etcd').map((e) => (e as { restartInMs: number }).restartInMs)).toEqual([500, 1000]);

    // Halted, nothing is restarted any more.
    await cluster.halt();
    const last = cluster.nats.pid;
    const seen = events.length;
    process.kill(last, 'SIGKILL');
    await cluster.nats.exited;
    await sleep(1_500);
    expect(events.length).toBe(seen);
    expect(cluster.nats.pid).toBe(last);
    await cluster.stop();
    expect(isRunning(cluster.etcd.pid)).toBe(false);
  });
});

async function until(ok: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(100);
  }
}
