// `controller dev`: runs one local executor next to the controller, registered with the dev
// registration token, its output folded into the controller's. Stopped with the controller.

import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Level, Logger, LogFormat } from '../util/log.js';

const EXECUTOR_JS = fileURLToPath(new URL('../../cmd/executor.js', import.meta.url));

export interface LocalExecutor {
  stop(): Promise<void>;
}

export async function startLocalExecutor(opts: {
  dataDir: string;
  controller: string;
  registrationToken: string;
  /** The CA to verify the controller with; undefined = plaintext gRPC. */
  caFile?: string;
  /** The controller's own, so the two write the same kind of lines. */
  logLevel: Level;
  logFormat: LogFormat;
  log: Logger;
}): Promise<LocalExecutor> {
  const configFile = join(opts.dataDir, 'executor.json');
  const name = `${hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-')}-local`.replace(/^[^a-z0-9]+/, 'x');
  await writeFile(
    configFile,
    JSON.stringify(
      {
        controller: opts.controller,
        registration_token: opts.registrationToken,
        name,
        groups: ['local'],
        runners: ['host'],
        state_file: join(opts.dataDir, 'executor-state.json'),
        work_dir: join(opts.dataDir, 'work'),
        ping_interval_seconds: 5,
        log_level: opts.logLevel,
        log_format: opts.logFormat,
        ...(opts.caFile ? { ca_file: opts.caFile } : { plaintext: true }),
      },
      null,
      2,
    ) + '\n',
    { mode: 0o600 },
  );
  await run(['register', '--config', configFile], opts.log);
  // Its own process group: a Ctrl-C in the terminal reaches only the controller, which then
  // stops the executor in order (a second signal would make it exit without draining).
  const child = spawn(process.execPath, [EXECUTOR_JS, 'start', '--config', configFile], {
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  opts.log.info('local executor started', { name, pid: child.pid, config: configFile });
  let closing: Promise<void> | undefined;
  return {
    stop: () =>
      (closing ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const force = setTimeout(() => child.kill('SIGKILL'), 35_000);
        child.once('exit', () => {
          clearTimeout(force);
          process.off('exit', killOnExit);
          resolve();
        });
        child.kill('SIGTERM');
      })),
  };
}

function run(args: string[], log: Logger): Promise<void> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [EXECUTOR_JS, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else {
        log.error('local executor registration failed', { code });
        reject(new Error(`executor ${args[0]} exited with code ${code}`));
      }
    });
  });
}
