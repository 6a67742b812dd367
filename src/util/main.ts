// The end of every entry point: run the commander program; usage errors exit 2, GRID's own
// errors print one line and exit with their code (toExitCode, or the program's own mapping),
// anything else prints its stack.

import { CommanderError, type Command } from 'commander';
import { GridError, toExitCode } from '../errors.js';

export async function runMain(program: Command, name: string, exitCode: (err: unknown) => number = toExitCode): Promise<void> {
  dropIpServernameWarning();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      process.stderr.write(`${name}: ${err instanceof GridError ? err.message : String((err as Error)?.stack ?? err)}\n`);
      process.exit(exitCode(err));
    }
  }
}

/**
 * grpc-js hands an endpoint's IP address (https://127.0.0.1:2379) to TLS as the server name, and
 * Node warns about that on stderr (DEP0123) in front of GRID's own output. Only the SNI hint is
 * affected: the certificate is still checked against the IP address.
 */
export function dropIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: unknown }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
