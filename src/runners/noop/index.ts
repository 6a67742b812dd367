// The noop runner: no process at all, for tests and benchmarks.

export { NoopRunner, type NoopRunnerOptions } from './runner.js';
