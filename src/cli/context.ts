// What every grid-cli command gets: the resolved client config, a connected client, the output
// format and where to print. Built once from the global options.

import { readCaFile, type ClientTls } from '../tls/grpc.js';
import { GridClient } from '../client/client.js';
import { loadClientConfig, type ClientConfig } from '../config/client.js';
import type { OutputFormat } from '../config/client.js';
import type { CliStdin } from './arg-values.js';
import { ValidationError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

export interface GlobalOptions {
  controller?: string;
  token?: string;
  output?: string;
  config?: string;
  requestTimeout?: string;
  version?: boolean;
}

export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** For `--arg K=-` and the secret prompt; absent in tests that have none. */
  stdin?: CliStdin;
}

export interface CliContext {
  config: ClientConfig;
  output: OutputFormat;
  io: CliIO;
  /** The global options as given on the command line. */
  globals: GlobalOptions;
  client(): GridClient;
  close(): void;
}

export async function buildContext(g: GlobalOptions, io: CliIO): Promise<CliContext> {
  const config = await loadClientConfig({
    file: g.config,
    env: io.env,
    cwd: io.cwd,
    flags: {
      controller: g.controller,
      token: g.token,
      output: g.output as OutputFormat | undefined,
      timeout_ms: g.requestTimeout !== undefined ? requestTimeoutMs(g.requestTimeout) : undefined,
    },
  });
  let client: GridClient | undefined;
  return {
    config,
    output: config.output,
    io,
    globals: g,
    client: () => (client ??= new GridClient({ address: config.controller, token: config.token, timeoutMs: config.timeout_ms, tls: clientTls(config) })),
    close: () => client?.close(),
  };
}

/** How grid-cli reaches the controller: TLS verified against ca_file (or the system's CAs), or plaintext if asked. */
export function clientTls(config: Pick<ClientConfig, 'ca_file' | 'plaintext'>): ClientTls {
  if (config.plaintext) return { plaintext: true };
  const caPem = readCaFile(config.ca_file, 'ca_file');
  return caPem ? { caPem } : {};
}

/** --request-timeout: a duration more than zero (30s, 2m, 1m30s) or plain seconds. */
export function requestTimeoutMs(text: string): number {
  const ms = parseDuration(text, '--request-timeout');
  if (ms <= 0) throw new ValidationError(`--request-timeout: ${JSON.stringify(text)} must be more than zero`);
  return ms;
}
