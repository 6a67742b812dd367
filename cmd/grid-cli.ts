#!/usr/bin/env node
// grid-cli entry point: run the CLI against the real process streams and exit with its code.

import { runCli } from '../src/cli/main.js';
import { processStdin } from '../src/cli/terminal.js';
import { dropIpServernameWarning } from '../src/util/main.js';

dropIpServernameWarning();

const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s + '\n'),
  err: (s) => process.stderr.write(s + '\n'),
  isTTY: !!process.stdout.isTTY,
  env: process.env,
  cwd: process.cwd(),
  stdin: processStdin(),
});
process.exitCode = code;
