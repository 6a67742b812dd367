// The end of every entry point: run the commander program; usage errors exit 2, GRID's own
// errors print one line and exit with their code, anything else prints its stack.

import { CommanderError, type Command } from 'commander';
import { GridError, toExitCode } from '../errors.js';

export async function runMain(program: Command, name: string): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      process.stderr.write(`${name}: ${err instanceof GridError ? err.message : String((err as Error)?.stack ?? err)}\n`);
      process.exit(toExitCode(err));
    }
  }
}
