// grid-cli's configuration: defaults → JSON file → environment → flags, and saving it back
// (`grid-cli login` and the dev controller write it, with mode 0600 because it holds a token).
//
// Environment: GRID_CONTROLLER, GRID_TOKEN (or GRID_TOKEN_FILE), GRID_OUTPUT, GRID_TIMEOUT_MS,
// GRID_CA_FILE, GRID_PLAINTEXT, and for `execute --via nats` GRID_NATS_SERVERS, GRID_NATS_CREDS,
// GRID_NATS_CA_FILE;
// GRID_CLIENT_CONFIG names the file. Lookup order without an explicit file: see
// clientConfigPaths. `token_file` in the file (relative to its folder) reads the token from a file.
import { chmodSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { absolutePath, hostPort } from './checks.js';
import { readConfigFile } from './json.js';
import { envWithSecretFiles, inlineSecretFile } from './secret-files.js';
import { ConfigError } from '../errors.js';
import { decodeLayer, envLayer, resolveLayers, t, type Env, type LoadOptions } from './schema.js';

/** grid-cli's -o: tables (wide: more columns), JSON or YAML records, or one name per line. */
export const OUTPUTS = ['table', 'wide', 'json', 'yaml', 'name'] as const;
export type OutputFormat = (typeof OUTPUTS)[number];

export interface ClientConfig {
  /** The controller's gRPC address, host:port. */
  controller: string;
  /** API token; "" = none (for a controller with auth "none"). */
  token: string;
  output: OutputFormat;
  /** Deadline of each call. */
  timeout_ms: number;
  /** PEM file of the CA that signed the controller's certificate; "" = the system's CAs. */
  ca_file: string;
  /** Talk to the controller without TLS (only for a controller with tls.enabled false). */
  plaintext: boolean;
  /** `execute --via nats`: the NATS URLs of GRID's bus. */
  nats_servers: string[];
  /** `execute --via nats`: a NATS credentials file of a user allowed to submit ("" = none). */
  nats_creds: string;
  /** `execute --via nats`: PEM file of the CA of the NATS servers ("" = the system's CAs). */
  nats_ca_file: string;
}

export const clientSchema = {
  controller: t.string({ default: '127.0.0.1:7070', check: (v) => hostPort(v) }),
  token: t.string(),
  output: t.enum(OUTPUTS, { default: 'table' }),
  timeout_ms: t.int({ default: 15_000, min: 1 }),
  ca_file: t.string(),
  plaintext: t.bool({ default: false }),
  nats_servers: t.list(),
  nats_creds: t.string(),
  nats_ca_file: t.string(),
};

/** Fields holding a path: relative to the file's folder in a file, to the working directory elsewhere. */
const PATH_FIELDS = ['ca_file', 'nats_creds', 'nats_ca_file'] as const;

/** Where the dev controller writes a ready-to-use client config, relative to its working directory. */
export const DEV_CLIENT_CONFIG = join('.grid', 'client.json');

/** The per-user file: `$XDG_CONFIG_HOME/grid/client.json`, else `~/.config/grid/client.json`. */
export function userClientConfigPath(env: Env = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'grid', 'client.json');
}

/**
 * The files to try, in order: only GRID_CLIENT_CONFIG when it is set (then it must exist);
 * otherwise `./.grid/client.json` if it exists (written by the dev controller), then the user file.
 */
export function clientConfigPaths(cwd: string, env: Env = process.env): string[] {
  if (env.GRID_CLIENT_CONFIG) return [absolutePath(env.GRID_CLIENT_CONFIG, cwd)];
  const dev = join(cwd, DEV_CLIENT_CONFIG);
  return existsSync(dev) ? [dev, userClientConfigPath(env)] : [userClientConfigPath(env)];
}

/** The file loadClientConfig would read without an explicit file, if any. */
export function findClientConfig(cwd: string, env: Env = process.env): string | undefined {
  const paths = clientConfigPaths(cwd, env);
  if (env.GRID_CLIENT_CONFIG) return paths[0];
  return paths.find((p) => existsSync(p));
}

export function loadClientConfig(opts: LoadOptions<ClientConfig> = {}): ClientConfig {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file === undefined ? findClientConfig(cwd, env) : absolutePath(opts.file, cwd);
  let fileLayer: Record<string, unknown> = {};
  if (file !== undefined) {
    const raw = readConfigFile(file);
    inlineSecretFile(raw, 'token', '', dirname(file));
    fileLayer = decodeLayer(clientSchema, raw, 'file');
    for (const k of PATH_FIELDS) {
      const v = fileLayer[k];
      if (typeof v === 'string' && v) fileLayer[k] = absolutePath(v, dirname(file));
    }
  }
  const envValues = envLayer(clientSchema, envWithSecretFiles(env, ['GRID_TOKEN'], cwd), 'GRID_');
  const cfg: ClientConfig = resolveLayers(clientSchema, fileLayer, envValues, decodeLayer(clientSchema, opts.flags, 'flags'));
  for (const k of PATH_FIELDS) if (cfg[k]) cfg[k] = absolutePath(cfg[k], cwd);
  return cfg;
}

/**
 * Merges `values` into the file at `path` (created with its folders if missing) and writes it
 * with mode 0600. The result is validated first, so a bad value never reaches the disk. A file
 * that reads its token from `token_file` is not given an inline token as well.
 */
export function saveClientConfig(path: string, values: Partial<ClientConfig>): void {
  const existing = existsSync(path) ? readConfigFile(path) : {};
  const merged: Record<string, unknown> = { ...existing };
  for (const [k, v] of Object.entries(values)) if (v !== undefined) merged[k] = v;
  const { token_file: tokenFile, ...checked } = merged;
  if (tokenFile !== undefined && values.token !== undefined) {
    throw new ConfigError('token', `${path} reads its token from token_file (${String(tokenFile)}); write the new token into that file, or remove token_file first`);
  }
  decodeLayer(clientSchema, checked, 'file');
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // Write then rename so a reader never sees half a file; chmod because an existing file may be wider.
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}
