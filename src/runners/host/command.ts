// What the host runner executes and with which environment: argv with {{name}} templates
// rendered per element (never through a shell), or an opt-in shell script that gets values only
// through environment variables. Secrets reach the process only through its environment.

import { isRestrictedEnvName, restrictedEnvMessage, secretInCommand } from '../../domain/env-rules.js';
import { CommandError, renderTemplate } from '../command-template.js';
import type { TaskSpec } from '../runner.js';

export { CommandError, renderTemplate };

/** Variables taken from the executor's own environment; everything else is left behind. */
export const INHERITED_ENV: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
];

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SHELL = '/bin/sh';

/**
 * The argv to spawn. With `shell`, the script runs as `/bin/sh -c <script>` unrendered: a value
 * pasted into shell text could inject commands, so scripts read `$NAME` from the environment.
 * Without it, each `command` element is rendered on its own and passed to execve as one argument,
 * so a value with spaces or `;` stays one literal argument. A secret is never rendered: every user
 * of the host can read argv in /proc/<pid>/cmdline. Definitions are refused for it when created;
 * this also holds for one stored before that rule.
 */
export function buildArgv(spec: TaskSpec): string[] {
  const def = spec.definition;
  if (def.shell !== undefined && def.shell.trim() !== '') return [SHELL, '-c', def.shell];
  if (!def.command || def.command.length === 0) {
    throw new CommandError(`job "${def.name}" has neither a command nor a shell script`);
  }
  const secret = secretInCommand(def.command, [...Object.keys(spec.secrets), ...def.env_vars.secrets.map((s) => s.name)]);
  if (secret) throw new CommandError(`${secret.path}: ${secret.message}`);
  const argv = def.command.map((part) => renderTemplate(part, spec.args));
  if (argv[0] === '') throw new CommandError('the command renders to an empty program name');
  return argv;
}

/**
 * The task's environment, later entries winning: the allow-listed executor variables, every
 * argument and secret under its declared name, the executor's extra `spec.env`, and GRID_* ids
 * last so a task cannot be told it is someone else. A restricted name (LD_PRELOAD, PATH…) the
 * definition does not allow is refused, as it is when the definition is created.
 */
export function buildEnv(spec: TaskSpec, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const allowed = spec.definition.allow_env ?? [];
  for (const name of [...Object.keys(spec.args), ...Object.keys(spec.secrets)]) {
    if (isRestrictedEnvName(name) && !allowed.includes(name)) throw new CommandError(`argument ${restrictedEnvMessage(name)}`);
  }
  const env: Record<string, string> = {};
  for (const k of INHERITED_ENV) {
    const v = parent[k];
    if (v !== undefined) env[k] = v;
  }
  env['PATH'] ??= DEFAULT_PATH;
  Object.assign(env, spec.args, spec.secrets, spec.env);
  env['GRID_EXECUTION_ID'] = spec.executionId;
  env['GRID_EXECUTOR'] = spec.executorName;
  env['GRID_ATTEMPT'] = String(spec.attempt);
  return env;
}
