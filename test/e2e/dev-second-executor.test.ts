// The README's "Adding an executor": on the embedded default that `make dev` runs, a second
// executor registers with the token file the controller writes, starts, is listed ACTIVE, and
// runs a task — following the steps as written, from the controller's working directory.

import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupProcesses, runProgram, startProgram, tempDir } from '../harness/processes.js';

afterAll(cleanupProcesses);

/** The steps as an operator's shell runs them: no GRID_CA_FILE of the test CA, only the files. */
const env = { GRID_CA_FILE: undefined };

describe('adding an executor to make dev', () => {
  it('registers with .grid/registration-token, starts and takes work', async () => {
    const cwd = tempDir('grid-dev-second-');
    const controller = await startProgram('controller', ['dev', '--grpc-address', '127.0.0.1:0', '--http-address', ''], {
      cwd,
      ready: /GRID is up/,
      readyTimeoutMs: 60_000,
    });
    try {
      expect(controller.logs()).toMatch(/Another executor registers with the token in \.grid\/registration-token/);
      const tokenFile = join(cwd, '.grid', 'registration-token');
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const creds = JSON.parse(readFileSync(join(cwd, '.grid', 'dev-credentials.json'), 'utf8')) as { registration_token: string };
      expect(readFileSync(tokenFile, 'utf8')).toBe(`${creds.registration_token}\n`);

      const address = (JSON.parse(readFileSync(join(cwd, '.grid', 'client.json'), 'utf8')) as { controller: string }).controller;
      writeFileSync(
        join(cwd, 'second.json'),
        JSON.stringify({
          controller: address,
          ca_file: '.grid/tls/ca.crt',
          registration_token_file: '.grid/registration-token',
          name: 'second',
          groups: ['local', 'blue'],
          runners: ['host'],
          state_file: 'second/state.json',
          work_dir: 'second/work',
        }),
      );
      const reg = await runProgram('executor', ['register', '--config', 'second.json'], { cwd, env });
      expect(reg.code, reg.stderr).toBe(0);
      expect(reg.stdout).toMatch(/^registered as second \(\w+\); state in .*second\/state\.json/);
      await startProgram('executor', ['start', '--config', 'second.json'], { cwd, env, ready: /heartbeat accepted state=ACTIVE/ });

      // grid-cli in that folder uses .grid/client.json.
      const list = await runProgram('grid-cli', ['executors', 'list'], { cwd, env });
      expect(list.stdout).toMatch(/^second\s+\w+\s+local,blue\s+host\s+ACTIVE/m);
      const created = await runProgram('grid-cli', ['create', join(process.cwd(), 'config/examples/hello.json')], { cwd, env });
      expect(created.code, created.stderr).toBe(0);
      const run = await runProgram('grid-cli', ['execute', 'hello-world', '--target', 'node:second', '--wait'], { cwd, env, timeoutMs: 60_000 });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(run.stdout).toMatch(/^second\s+SUCCEEDED\s+0/m);
    } finally {
      await controller.stop('SIGINT', 60_000);
    }
  }, 150_000);
});
