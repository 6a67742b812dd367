// The end of every entry point: run the commander program; usage errors exit 2, GRID's own
// errors print one line and exit with their code (toExitCode, or the program's own mapping),
// anything else prints its stack.

import { CommanderError, type Command } from 'commander';
import { GridError, toExitCode } from '../errors.js';
import type { Logger } from './log.js';

/**
 * `jsonLog` gives the logger to report a failure through once the program has one in the json
 * format (so that line is JSON too); before that, and in the text format, it is `<name>: <error>`.
 */
export async function runMain(
  program: Command,
  name: string,
  exitCode: (err: unknown) => number = toExitCode,
  jsonLog?: () => Logger | undefined,
): Promise<void> {
  dropIpServernameWarning();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
    } else {
      const message = err instanceof GridError ? err.message : String((err as Error)?.stack ?? err);
      const log = jsonLog?.();
      if (log) log.error(message, { exit_code: exitCode(err) });
      else process.stderr.write(`${name}: ${message}\n`);
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
