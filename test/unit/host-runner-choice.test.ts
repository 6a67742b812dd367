// Which host runner an executor builds from its configuration: with the spawner by default,
// forking from the executor itself with GRID_HOST_SPAWNER=0.

import { describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { createRunners } from '../../src/executor/agent.js';
import { HostRunner } from '../../src/runners/host/index.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger({ level: 'error', write: () => {} });

function hostRunner(env: NodeJS.ProcessEnv): HostRunner {
  const cfg = loadExecutorConfig({ env: {}, cwd: '/tmp', flags: { runners: ['host'] } });
  const [runner] = createRunners(cfg, env, log);
  expect(runner).toBeInstanceOf(HostRunner);
  return runner as HostRunner;
}

describe('createRunners: host', () => {
  it('forks tasks through the spawner by default, started before the first task', async () => {
    const runner = hostRunner({});
    try {
      expect(runner.spawner).toBeDefined();
      await expect.poll(() => runner.spawner!.pid, { timeout: 5_000 }).toBeGreaterThan(0);
    } finally {
      await runner.close();
    }
    expect(runner.spawner!.pid).toBeUndefined();
  });

  it('forks them from the executor with GRID_HOST_SPAWNER=0', () => {
    expect(hostRunner({ GRID_HOST_SPAWNER: '0' }).spawner).toBeUndefined();
  });
});
