// grid-cli: the operator's tool. Parses the command line, builds a context, runs one command,
// prints one clear line on error and exits with a code of the table in ExitCode (src/errors.ts).

import { Command, CommanderError, Option } from 'commander';
import { clientExitCode, ExitCode, GridError } from '../errors.js';
import { OUTPUTS } from './render.js';
import { buildContext, type CliContext, type CliIO, type GlobalOptions } from './context.js';
import { registerApplyCommand } from './commands/apply.js';
import { registerCompletionCommands } from './commands/completion.js';
import { registerConfigCommands } from './commands/config.js';
import { registerExecutionCommands } from './commands/executions.js';
import { registerExecutorCommands } from './commands/executors.js';
import { registerHealthCommand } from './commands/health.js';
import { registerFileCommands } from './commands/files.js';
import { registerJobCommands } from './commands/jobs.js';
import { registerNatsCommands } from './commands/nats.js';
import { printVersions } from './commands/version.js';

/** Wraps a command's work: builds the context, runs it, closes the client. */
export type Act = <A extends unknown[]>(
  fn: (ctx: CliContext, ...args: A) => Promise<void> | void,
  opts?: { needsConfig?: boolean },
) => (...args: unknown[]) => Promise<void>;

/** Thrown by a command to exit with a given code without printing an error. */
export class ExitWith extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

export function buildProgram(io: CliIO): Command {
  const program = new Command('grid-cli');
  program
    .description('Operate GRID: define jobs, execute them on fleets of executors, follow their logs.')
    .addOption(new Option('--controller <host:port>', 'controller address (env GRID_CONTROLLER)'))
    .addOption(new Option('--token <token>', 'bearer token (env GRID_TOKEN)'))
    .addOption(new Option('-o, --output <format>', 'output format (env GRID_OUTPUT): table, wide (more columns), json, yaml, or name (one per line)').choices(OUTPUTS))
    .addOption(new Option('--config <file>', 'client config file (env GRID_CLIENT_CONFIG)'))
    .addOption(new Option('--request-timeout <duration>', 'deadline of each call to the controller: 30s, 2m or seconds (env GRID_TIMEOUT_MS; default 15s)'))
    .addOption(new Option('-V, --version', 'print the versions of grid-cli, its API and the controller it talks to'))
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
      // An error is one line: commander puts its "(Did you mean …?)" on a line of its own.
      outputError: (s, write) => write(s.replace(/\n(?!$)/g, ' ')),
    })
    .exitOverride()
    .addHelpText(
      'after',
      '\nExamples:\n  $ grid-cli create config/examples/hello.json\n  $ grid-cli list\n  $ grid-cli describe hello-world\n  $ grid-cli execute hello-world --arg NAME=ops --wait',
    );

  const act: Act =
    (fn, opts) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const g = cmd.optsWithGlobals() as GlobalOptions;
      const ctx =
        opts?.needsConfig === false
          ? await buildContext({}, io).catch(() => bareContext(io))
          : await buildContext(g, io);
      ctx.globals = g;
      try {
        await fn(ctx, ...(args.slice(0, -1) as never));
      } finally {
        ctx.close();
      }
    };

  registerConfigCommands(program, act);
  registerJobCommands(program, act);
  registerApplyCommand(program, act);
  registerExecutionCommands(program, act);
  registerExecutorCommands(program, act);
  registerFileCommands(program, act);
  registerHealthCommand(program, act);
  registerNatsCommands(program, act);
  registerCompletionCommands(program, io);
  return program;
}

function bareContext(io: CliIO): CliContext {
  return {
    config: { controller: '127.0.0.1:7070', token: '', output: 'table', timeout_ms: 15_000 } as CliContext['config'],
    output: 'table',
    io,
    globals: {},
    client: () => {
      throw new Error('no client in this command');
    },
    close: () => {},
  };
}

/** Runs grid-cli with `argv` (without node and script) and returns the exit code. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  const program = buildProgram(io);
  try {
    // `grid-cli [global options] --version`, without a command: the versions, which need the
    // controller's answer, so not commander's synchronous version option.
    if (argv.includes('--version') || argv.includes('-V')) {
      const { operands, unknown } = program.parseOptions(argv);
      if (operands.length === 0 && unknown.length === 0) {
        await printVersions(program.opts<GlobalOptions>(), io);
        return ExitCode.OK;
      }
    }
    await program.parseAsync(argv, { from: 'user' });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof ExitWith) return err.code;
    if (err instanceof CommanderError) {
      // Help and version are not errors; everything else commander rejects is usage.
      // `commander.help` is help shown because no command was given: that is a usage error.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    if (err instanceof GridError) {
      io.err(`error: ${err.message}`);
      return clientExitCode(err);
    }
    io.err(`error: ${(err as Error)?.message ?? String(err)}`);
    return ExitCode.FAILURE;
  }
}
