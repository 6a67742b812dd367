// grid-cli completion bash|zsh|fish: a completion script generated from the command tree, and the
// hidden `__complete KIND` the scripts call for the names only the controller knows (as
// kubectl's and other cobra programs' scripts call `__complete`).

import { Argument, type Command } from 'commander';
import { buildContext, type CliIO, type GlobalOptions } from '../context.js';
import { fishScript } from '../completion/fish.js';
import { bashScript, zshScript } from '../completion/posix.js';
import { commandSpec, NAME_KINDS, type NameKind } from '../completion/tree.js';

const SHELLS = { bash: bashScript, zsh: zshScript, fish: fishScript } as const;
type Shell = keyof typeof SHELLS;

/** A TAB should not wait long: the names are asked for with this deadline. */
const COMPLETION_DEADLINE = '2s';

export function registerCompletionCommands(program: Command, io: CliIO): void {
  const name = program.name();
  program
    .command('completion')
    .description('print a shell completion script for bash, zsh or fish')
    .addArgument(new Argument('<shell>', 'the shell').choices(Object.keys(SHELLS)))
    .addHelpText(
      'after',
      [
        '',
        'Completes commands, subcommands, options and their choices; job names (execute, describe,',
        'delete, --job-name, executions list --job) and executor names (executors describe|remove,',
        'execute --target node:NAME) come from the controller of your usual config, asked with a 2 s',
        'deadline (nothing is offered when it cannot be reached).',
        '',
        'Install:',
        `  bash (current shell):  $ source <(${name} completion bash)`,
        `  bash (every shell):    $ echo 'source <(${name} completion bash)' >> ~/.bashrc`,
        `  zsh:                   $ ${name} completion zsh > "\${fpath[1]}/_${name}"   (then start a new shell)`,
        `  fish:                  $ ${name} completion fish > ~/.config/fish/completions/${name}.fish`,
        '',
        'Example:',
        `  $ source <(${name} completion bash)`,
        `  $ ${name} execute <TAB>`,
      ].join('\n'),
    )
    .action((shell: Shell) => io.out(SHELLS[shell](name, commandSpec(program)).replace(/\n$/, '')));

  program
    .command('__complete', { hidden: true })
    .description('print names for shell completion, one a line; nothing if the controller cannot be reached')
    .addArgument(new Argument('<kind>', 'what to list').choices(NAME_KINDS))
    .action(async (kind: NameKind, _o: unknown, cmd: Command) => {
      const names = await controllerNames(kind, cmd.optsWithGlobals<GlobalOptions>(), io).catch(() => []);
      if (names.length) io.out(names.join('\n'));
    });
}

/** The names of `kind` the controller knows, asked with the user's config and a short deadline. */
async function controllerNames(kind: NameKind, g: GlobalOptions, io: CliIO): Promise<string[]> {
  const ctx = await buildContext({ ...g, requestTimeout: COMPLETION_DEADLINE }, io);
  try {
    const ctl = ctx.client().ctl;
    if (kind === 'jobs') return (await ctl.listJobs()).jobs.map((j) => j.definition!.name);
    const { executors } = await ctl.listExecutors();
    if (kind === 'executors') return executors.map((e) => e.name);
    const groups = [...new Set(executors.flatMap((e) => e.groups))].sort();
    return ['all', 'any', ...groups.flatMap((gr) => [`group:${gr}`, `any:${gr}`]), ...executors.map((e) => `node:${e.name}`)];
  } finally {
    ctx.close();
  }
}
