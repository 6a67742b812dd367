// Argument values that are not typed on grid-cli's command line, so that they never show in the
// process list or the shell's history: `K=@path` reads a file, `K=-` reads stdin, `K=@@x` is the
// literal "@x"; and on a terminal a required secret that was not given is asked for without echo.

import { NotFoundError, PermissionDeniedError, ValidationError, type Problem } from '../errors.js';
import type { GridClient } from '../client/client.js';
import type { ExecuteRequest } from '../gen/grid/v1/controller.js';
import { MAX_SECRET_FILE_BYTES, readSecretFile, withoutFinalNewline } from '../util/secret-file.js';
import { absolutePath } from '../config/checks.js';

/** grid-cli's stdin, as the execute command needs it. */
export interface CliStdin {
  /** A terminal: `-` and missing required secrets are then typed in, without echo. */
  isTTY: boolean;
  /** Everything until end of input; rejects beyond `maxBytes`. */
  readAll(maxBytes: number): Promise<string>;
  /** Shows `prompt` and reads one line from the terminal without echoing it. */
  readHidden(prompt: string): Promise<string>;
}

/**
 * Resolves `@path`, `-` and `@@…` in the values of `pairs` (name → value as written). A file's
 * or stdin's one trailing newline is dropped. Only one argument may read stdin.
 */
export async function resolveArgValues(
  pairs: Record<string, string>,
  io: { cwd: string; stdin?: CliStdin },
): Promise<Record<string, string>> {
  const problems: Problem[] = [];
  const out = new Map(Object.entries(pairs));
  const fromStdin = [...out].filter(([, v]) => v === '-').map(([k]) => k);
  if (fromStdin.length > 1) {
    problems.push({ path: 'args', message: `${fromStdin.map((k) => `${k}=-`).join(' and ')}: only one argument can read stdin; give the others with @FILE` });
  }
  for (const [key, value] of out) {
    if (value.startsWith('@@')) out.set(key, value.slice(1));
    else if (value.startsWith('@')) {
      const given = value.slice(1);
      if (given === '') {
        problems.push({ path: `args.${key}`, message: '"@" must be followed by a file to read the value from, e.g. @./password.txt (write @@ for a value that starts with "@")' });
        continue;
      }
      const r = readSecretFile(absolutePath(given, io.cwd));
      if (r.ok) out.set(key, r.value);
      else problems.push({ path: `args.${key}`, message: `cannot read the value from ${given}: ${r.reason}` });
    }
  }
  if (problems.length) throw new ValidationError(problems);
  if (fromStdin.length === 1) out.set(fromStdin[0]!, await readStdinValue(fromStdin[0]!, io.stdin));
  return Object.fromEntries(out);
}

async function readStdinValue(key: string, stdin: CliStdin | undefined): Promise<string> {
  if (!stdin) throw new ValidationError([{ path: `args.${key}`, message: '"-" reads the value from stdin, but there is no stdin here' }]);
  if (stdin.isTTY) return stdin.readHidden(`${key}: `);
  try {
    return withoutFinalNewline(await stdin.readAll(MAX_SECRET_FILE_BYTES));
  } catch (err) {
    throw new ValidationError([{ path: `args.${key}`, message: `cannot read the value from stdin: ${(err as Error).message}` }], { cause: err });
  }
}

/**
 * On a terminal, asks for each required secret of the job that `req` does not give, reading the
 * definition with describe first. When describe is refused or the job is unknown, nothing is
 * asked: execute then reports the problem itself.
 */
export async function askForMissingSecrets(client: GridClient, req: ExecuteRequest, stdin: CliStdin | undefined): Promise<void> {
  if (!stdin?.isTTY || req.dryRun) return;
  let secrets;
  try {
    secrets = (await client.ctl.describeJob(req.job)).definition?.envVars?.secrets ?? [];
  } catch (err) {
    if (err instanceof NotFoundError || err instanceof PermissionDeniedError) return;
    throw err;
  }
  for (const s of secrets) {
    if (!s.required || Object.hasOwn(req.args, s.name)) continue;
    req.args[s.name] = await stdin.readHidden(`${s.name}${s.description ? ` (${s.description})` : ''}: `);
  }
}
