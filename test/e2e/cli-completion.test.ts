// Shell completion end to end: the script of `grid-cli completion bash`, sourced in a real bash
// (no terminal, no bash-completion package), completes commands and options from the command
// tree and job and executor names from a real controller, through the hidden `__complete`.

import { spawnSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExecutor } from '../harness/executor-process.js';
import { childEnv, cleanupProcesses, programPath, runCli, startController, tempDir, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let dir: string;
const jobs = [uniqueName('comp-a'), uniqueName('comp-b')];
const executorName = uniqueName('comp-node');

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  dir = tempDir('grid-e2e-completion-');
  for (const name of jobs) {
    const file = join(dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ name, command: ['echo', 'hi'] }));
    const r = await runCli(['create', file], { address: controller.address, token: TOKENS.admin });
    expect(r.code, r.stderr).toBe(0);
  }
  await startExecutor({ controller: controller.address, name: executorName, groups: ['comp'], config: { runners: ['host'] } });
  // `grid-cli` on PATH, as an installed one would be.
  mkdirBin();
  const script = await runCli(['completion', 'bash'], { address: controller.address });
  expect(script.code, script.stderr).toBe(0);
  writeFileSync(join(dir, 'grid-cli.bash'), script.stdout);
}, 120_000);

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

function mkdirBin(): void {
  const wrapper = join(dir, 'grid-cli');
  writeFileSync(wrapper, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(programPath('grid-cli'))} "$@"\n`);
  chmodSync(wrapper, 0o755);
}

/**
 * Sources the script in a fresh bash, sets COMP_WORDS to `words` (the last one being completed),
 * calls the function `complete -p grid-cli` names and returns COMPREPLY.
 */
function complete(words: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const program = [
    `source ${JSON.stringify(join(dir, 'grid-cli.bash'))}`,
    'fn=$(complete -p grid-cli | sed -E "s/.*-F ([^ ]+).*/\\1/")',
    `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})`,
    `COMP_CWORD=${words.length - 1}`,
    '"$fn"',
    'printf "%s\\n" "${COMPREPLY[@]}"',
  ].join('\n');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', program], {
    env: childEnv({ PATH: `${dir}:${process.env.PATH}`, GRID_CONTROLLER: controller.address, GRID_TOKEN: TOKENS.admin, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('grid-cli completion bash', () => {
  it('completes the job argument of execute with the jobs the controller has', () => {
    expect(complete(['grid-cli', 'execute', ''])).toEqual([...jobs].sort());
    expect(complete(['grid-cli', 'describe', jobs[0]!.slice(0, -2)])).toEqual([jobs[0]]);
    expect(complete(['grid-cli', 'execute', '--job-name', ''])).toEqual([...jobs].sort());
  });

  it('completes subcommands and options from the command tree', () => {
    expect(complete(['grid-cli', 'exe'])).toEqual(['execute', 'executions', 'executors']);
    expect(complete(['grid-cli', 'execute', '--ta'])).toEqual(['--target']);
    expect(complete(['grid-cli', '--output', ''])).toEqual(['json', 'name', 'table', 'wide', 'yaml']);
    expect(complete(['grid-cli', 'completion', ''])).toEqual(['bash', 'fish', 'zsh']);
  });

  it('completes executor names, and node: targets', () => {
    expect(complete(['grid-cli', 'executors', 'describe', ''])).toEqual([executorName]);
    // bash splits "node:comp" at the colon; what it replaces is the part after it.
    expect(complete(['grid-cli', 'execute', 'x', '--target', 'node', ':', ''])).toEqual([executorName]);
    expect(complete(['grid-cli', 'execute', 'x', '--target', 'gr'])).toEqual(['group:comp']);
  });

  it('offers no names and prints nothing when the controller cannot be reached', () => {
    expect(complete(['grid-cli', 'execute', ''], { GRID_CONTROLLER: '127.0.0.1:1' })).toEqual([]);
  });
});

describe('the zsh and fish scripts', () => {
  for (const shell of ['zsh', 'fish']) {
    const installed = spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
    it(`parses in ${shell}`, async (t) => {
      t.skip(!installed, `${shell} is not installed`);
      const r = await runCli(['completion', shell], { address: controller.address });
      expect(r.code, r.stderr).toBe(0);
      const file = join(dir, `grid-cli.${shell}`);
      writeFileSync(file, r.stdout);
      const check = spawnSync(shell, ['-n', file], { encoding: 'utf8' });
      expect(check.status, check.stderr).toBe(0);
    });
  }
});
