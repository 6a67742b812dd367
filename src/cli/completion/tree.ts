// What shell completion knows about grid-cli, read from the commander command tree itself, so a
// command, option or choice added to the tree is completed without being listed anywhere else.
// Names that only the controller knows (jobs, executors) are marked on the options and arguments
// that take them; the scripts ask `grid-cli __complete KIND` for them.

import type { Argument, Command, Option } from 'commander';

/** What `grid-cli __complete` lists: job names, executor names, or execute targets. */
export const NAME_KINDS = ['jobs', 'executors', 'targets'] as const;
export type NameKind = (typeof NAME_KINDS)[number];

const kinds = new WeakMap<Option | Argument, NameKind>();

/** Marks an option or argument as taking a name the controller knows; returns it. */
export function completesWith<T extends Option | Argument>(kind: NameKind, x: T): T {
  kinds.set(x, kind);
  return x;
}

/** What a value is completed with: fixed choices, names from the controller, or nothing known. */
export interface ValueSpec {
  choices?: string[];
  names?: NameKind;
}

export interface OptionSpec extends ValueSpec {
  /** `--output`, `-o`: every spelling. */
  flags: string[];
  description: string;
  takesValue: boolean;
}

export interface CommandSpec {
  /** The words that name it after `grid-cli`: [] for grid-cli itself, ['executors', 'list']. */
  path: string[];
  description: string;
  subcommands: CommandSpec[];
  /** Its own options and those of the commands above it (commander takes them after it too). */
  options: OptionSpec[];
  /** Its positional arguments, in order. */
  args: ValueSpec[];
}

/** The visible tree under `cmd` (hidden commands and options left out). */
export function commandSpec(cmd: Command, path: string[] = [], inherited: OptionSpec[] = []): CommandSpec {
  const help = cmd.createHelp();
  const own = help.visibleOptions(cmd).map(optionSpec);
  const ownFlags = new Set(own.flatMap((o) => o.flags));
  const options = [...own, ...inherited.filter((o) => !o.flags.some((f) => ownFlags.has(f)))];
  // --help is every command's own; --version is only grid-cli's.
  const toPass = options.filter((o) => !o.flags.includes('--help') && !o.flags.includes('--version'));
  return {
    path,
    description: cmd.description(),
    subcommands: help.visibleCommands(cmd).map((sub) => commandSpec(sub, [...path, sub.name()], toPass)),
    options,
    args: cmd.registeredArguments.map((a) => valueSpec(a, a.argChoices)),
  };
}

/** Every command of the tree, depth first, the root first. */
export function allCommands(spec: CommandSpec): CommandSpec[] {
  return [spec, ...spec.subcommands.flatMap(allCommands)];
}

function optionSpec(o: Option): OptionSpec {
  return {
    flags: [o.long, o.short].filter((f): f is string => !!f),
    description: o.description,
    takesValue: o.required || o.optional,
    ...valueSpec(o, o.argChoices),
  };
}

function valueSpec(x: Option | Argument, choices: string[] | undefined): ValueSpec {
  const names = kinds.get(x);
  return { ...(choices?.length ? { choices: [...choices] } : {}), ...(names ? { names } : {}) };
}
