// Integration tests for the embedded cluster: real nats-server and etcd, started, used, stopped.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Etcd3 } from 'etcd3';
import { afterEach, describe, expect, it } from 'vitest';
import { startEmbeddedCluster, type EmbeddedCluster } from '../../src/embedded/index.js';
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
    const unexpected: string[] = [];
    // The first cluster is never stopped: as if its controller had been killed with -9.
    const orphan = track(await startEmbeddedCluster({ dataDir, onUnexpectedExit: (which) => unexpected.push(which) }));
    const next = track(await startEmbeddedCluster({ dataDir }));

    expect(isRunning(orphan.nats.pid)).toBe(false);
    expect(isRunning(orphan.etcd.pid)).toBe(false);
    expect(next.nats.pid).not.toBe(orphan.nats.pid);
    expect(next.natsUrl).toBe(orphan.natsUrl); // the ports came free and were reused
    await orphan.nats.exited;
    await orphan.etcd.exited;
    expect(unexpected.sort()).toEqual(['etcd', 'nats']);

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

  it('reports a server that dies on its own', async () => {
    const dataDir = tempDir();
    const seen: Array<{ which: string; signal: string | null }> = [];
    const cluster = track(
      await startEmbeddedCluster({ dataDir, onUnexpectedExit: (which, _code, signal) => seen.push({ which, signal }) }),
    );
    process.kill(cluster.etcd.pid, 'SIGKILL');
    await cluster.etcd.exited;
    expect(seen).toEqual([{ which: 'etcd', signal: 'SIGKILL' }]);
    await cluster.stop();
    expect(isRunning(cluster.nats.pid)).toBe(false);
  });
});
