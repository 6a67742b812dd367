// Server-streaming calls end with the right status when the handler fails (they must not hang).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { NotFoundError, PermissionDeniedError } from '../../src/errors.js';
import { cleanupProcesses, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';

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
    const c = new GridClient({ address: controller.address, token: TOKENS.operator });
    try {
      await expect(drain(c.ctl.watchExecution('01JZZZZZZZZZZZZZZZZZZZZZZZ'))).rejects.toBeInstanceOf(NotFoundError);
      await expect(drain(c.ctl.getLogs({ executionId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', follow: true }))).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      c.close();
    }
  });

  it('a refused caller gets the refusal, not a hang', async () => {
    const c = new GridClient({ address: controller.address, token: TOKENS.viewer });
    try {
      await expect(drain(c.ctl.getLogs({ executionId: '01JZZZZZZZZZZZZZZZZZZZZZZZ' }))).rejects.toBeInstanceOf(PermissionDeniedError);
    } finally {
      c.close();
    }
  });
});
