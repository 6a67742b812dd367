// The host runner: child processes on the executor's machine.

export { HostRunner, type HostRunnerOptions } from './runner.js';
export { buildArgv, buildEnv, renderTemplate, CommandError, INHERITED_ENV } from './command.js';
