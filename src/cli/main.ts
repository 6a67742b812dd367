// grid-cli: the operator's tool. Parses the command line, builds a context, runs one command,
// prints one clear line on error and exits 0 (ok), 1 (failure) or 2 (usage).

import { Command, CommanderError, Option } from 'commander';
import { ExitCode, GridError, toExitCode } from '../errors.js';
import { OUTPUTS } from './render.js';
import { buildContext, type CliContext, type CliIO, type GlobalOptions } from './context.js';
import { registerApplyCommand } from './commands/apply.js';
import { registerConfigCommands } from './commands/config.js';
import { registerExecutionCommands } from './commands/executions.js';
import { registerExecutorCommands } from './commands/executors.js';
import { registerHealthCommand } from './commands/health.js';
import { registerFileCommands } from './commands/files.js';
import { registerJobCommands } from './commands/jobs.js';
import { registerNatsCommands } from './commands/nats.js';

/** Wraps a command's work: builds the context, runs it, closes the client. */
export type Act = <A extends unknown[]>(
  fn: (ctx: CliContext, ...args: A) => Promise<void> | void,
  opts?: {
    needsConfig?: boolean;
    /**
     * Long flags (`--timeout`) the command defines although the program has a global option of
     * the same name. Commander gives every occurrence to the global one; act hands those written
     * after the command's name to the command (its option value) and keeps the rest global.
     */
    ownOptions?: string[];
  },
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
    .addOption(new Option('--timeout <seconds>', 'deadline for each call to the controller'))
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
      const g = { ...(cmd.optsWithGlobals() as GlobalOptions) };
      for (const flag of opts?.ownOptions ?? []) {
        const { before, after } = splitOptionByCommand(cmd, flag);
        const key = flag.replace(/^--/, '').replace(/-(\w)/g, (_, c: string) => c.toUpperCase()) as keyof GlobalOptions;
        g[key] = before;
        cmd.setOptionValue(key, after);
      }
      const ctx =
        opts?.needsConfig === false
          ? await buildContext({}, io).catch(() => bareContext(io))
          : await buildContext(g, io);
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
  return program;
}

/**
 * The last value of `flag` written before and after `cmd`'s name on the command line. Walks the
 * raw arguments, skipping the values of options that take one, to find where the command starts.
 */
export function splitOptionByCommand(cmd: Command, flag: string): { before?: string; after?: string } {
  const chain: Command[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) chain.unshift(c);
  const root = chain[0]!;
  const raw = (root as unknown as { rawArgs?: string[] }).rawArgs ?? [];
  const takesValue = new Set<string>();
  for (const c of chain) {
    for (const o of c.options) {
      if (!o.required && !o.optional) continue;
      if (o.long) takesValue.add(o.long);
      if (o.short) takesValue.add(o.short);
    }
  }
  const path = chain.slice(1).map((c) => [c.name(), ...c.aliases()]);
  let depth = 0;
  const found: { before?: string; after?: string } = {};
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i]!;
    if (a === '--') break;
    if (a.startsWith('-') && a.length > 1) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(0, eq) : a;
      let value: string | undefined;
      if (eq > 0) value = a.slice(eq + 1);
      else if (takesValue.has(name)) value = raw[++i];
      if (name === flag && value !== undefined) found[depth >= path.length ? 'after' : 'before'] = value;
      continue;
    }
    if (depth < path.length && path[depth]!.includes(a)) depth++;
  }
  return found;
}

function bareContext(io: CliIO): CliContext {
  return {
    config: { controller: '127.0.0.1:7070', token: '', output: 'table', timeout_ms: 15_000 } as CliContext['config'],
    output: 'table',
    io,
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
      return toExitCode(err);
    }
    io.err(`error: ${(err as Error)?.message ?? String(err)}`);
    return ExitCode.FAILURE;
  }
}
