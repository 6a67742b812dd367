// Server-streaming calls end with the right status when the handler fails (they must not hang).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { NotFoundError, PermissionDeniedError } from '../../src/errors.js';
import { cleanupProcesses, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';
import { testClientTls } from '../harness/grpc-tls.js';

let servers: TestServers;
let controller: RunningController;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

async function drain<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe('server streams', () => {
  it('WatchExecution and GetLogs of an unknown execution fail with NOT_FOUND', async () => {
    const c = new GridClient({ address: controller.address, token: TOKENS.operator, tls: testClientTls() });
    try {
      await expect(drain(c.ctl.watchExecution('01JZZZZZZZZZZZZZZZZZZZZZZZ'))).rejects.toBeInstanceOf(NotFoundError);
      await expect(drain(c.ctl.getLogs({ executionId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', follow: true }))).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      c.close();
    }
  });

  it('a refused caller gets the refusal, not a hang', async () => {
    const c = new GridClient({ address: controller.address, token: TOKENS.viewer, tls: testClientTls() });
    try {
      await expect(drain(c.ctl.getLogs({ executionId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' }))).rejects.toBeInstanceOf(PermissionDeniedError);
    } finally {
      c.close();
    }
  });
});

describe('many watches on one connection', () => {
  it('callers that stop at the terminal snapshot do not get the connection dropped (1,500 watches, then a call)', async () => {
    const c = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
    try {
      await c.ctl.createJob({ definitionJson: JSON.stringify({ name: 'watched', description: 'd', command: ['true'] }), replace: true, expectedVersion: 0 });
      // No executor is named so: the execution fails at once, and every watch starts at its end.
      const { executionId } = await c.ctl.execute({
        job: 'watched', args: {}, target: 'node:nobody', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false,
      });
      for (let i = 0; i < 1_500; i++) {
        for await (const x of c.ctl.watchExecution(executionId)) {
          expect(x.id).toBe(executionId);
          break; // the first snapshot is terminal already
        }
      }
      expect((await c.ctl.getExecution(executionId)).id).toBe(executionId);
    } finally {
      c.close();
    }
  }, 120_000);
});
