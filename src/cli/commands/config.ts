// grid-cli config set / show / import: the client config file.

import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LineCounter, parseDocument } from 'yaml';
import { clientConfigPaths, saveClientConfig, type ClientConfig } from '../../config/client.js';
import { ConfigError, ValidationError } from '../../errors.js';
import { requestTimeoutMs } from '../context.js';
import type { Act } from '../main.js';
import { json } from '../output.js';

export function registerConfigCommands(program: Command, act: Act): void {
  const config = program
    .command('config')
    .description("grid-cli's own settings: controller address, token and call deadline")
    .addHelpText(
      'after',
      '\nExamples:\n  $ grid-cli config set --controller grid.example.com:7070 --token "$TOKEN"\n  $ grid-cli config show\n  $ grid-cli config import ~/.octavius/octavius_client.yaml',
    );

  // The connection flags are grid-cli's global ones: `config set` saves what they say instead of
  // using it, so no command defines an option of the same name as a global one.
  config
    .command('set')
    .description('save the global --controller, --token and/or --request-timeout in the client config file')
    .option('--file <path>', 'config file to write (default: the one in effect)')
    .addHelpText('after', '\nExamples:\n  $ grid-cli config set --controller grid.example.com:7070 --token "$TOKEN"\n  $ grid-cli config set --request-timeout 30s --file ./grid-client.json')
    .action(
      act(
        async (ctx, o: { file?: string }) => {
          const g = ctx.globals;
          const values: Partial<ClientConfig> = {
            controller: g.controller,
            token: g.token,
            timeout_ms: g.requestTimeout !== undefined ? requestTimeoutMs(g.requestTimeout) : undefined,
          };
          const named = savedNames(values);
          if (named.length === 0) throw new ValidationError('config set: nothing to save; give --controller HOST:PORT, --token TOKEN and/or --request-timeout DURATION');
          const file = o.file ?? effectiveConfigFile(ctx.io.cwd, ctx.io.env);
          saveClientConfig(file, values);
          ctx.io.out(`saved ${named.join(', ')} in ${file}`);
        },
        { needsConfig: false },
      ),
    );

  config
    .command('show')
    .description('show the settings in effect (the token is not printed)')
    .addHelpText('after', '\nExample:\n  $ grid-cli config show')
    .action(
      act(async (ctx) => {
        const shown = {
          controller: ctx.config.controller,
          token: ctx.config.token ? '(set)' : '(not set)',
          output: ctx.config.output,
          request_timeout: `${ctx.config.timeout_ms / 1000}s`,
          file: effectiveConfigFile(ctx.io.cwd, ctx.io.env),
        };
        ctx.io.out(ctx.output === 'json' ? json(shown) : Object.entries(shown).map(([k, v]) => `${k}: ${v}`).join('\n'));
      }),
    );

  config
    .command('import')
    .description("save the settings of Octavius's client config (octavius_client.yaml) in grid-cli's")
    .argument('[file]', 'the Octavius file (default: ~/.octavius/octavius_client.yaml)')
    .option('--file <path>', 'config file to write (default: the one in effect)')
    .addHelpText(
      'after',
      [
        '',
        'Keys (any case): CP_HOST → controller, ACCESS_TOKEN → token, CONNECTION_TIMEOUT_SECS →',
        'request timeout. EMAIL_ID is not imported: GRID knows a caller by its token.',
        '',
        'Examples:',
        '  $ grid-cli config import',
        '  $ grid-cli config import ./octavius_client.yaml --file ./.grid/client.json',
      ].join('\n'),
    )
    .action(
      act(
        async (ctx, from: string | undefined, o: { file?: string }) => {
          const source = from ?? join(ctx.io.env.HOME || homedir(), '.octavius', 'octavius_client.yaml');
          const { values, skipped } = readOctaviusConfig(source);
          const file = o.file ?? effectiveConfigFile(ctx.io.cwd, ctx.io.env);
          saveClientConfig(file, values);
          ctx.io.out(`imported ${savedNames(values).join(', ')} from ${source} into ${file}`);
          for (const line of skipped) ctx.io.err(line);
        },
        { needsConfig: false },
      ),
    );
}

/** The names of the settings `values` gives, as the operator knows them. */
function savedNames(values: Partial<ClientConfig>): string[] {
  const names: Array<[keyof ClientConfig, string]> = [['controller', 'controller'], ['token', 'token'], ['timeout_ms', 'request timeout']];
  return names.filter(([k]) => values[k] !== undefined).map(([, name]) => name);
}

/** Octavius's keys (viper matches them in any case) → grid-cli's. */
const OCTAVIUS_KEYS: Record<string, 'controller' | 'token' | 'timeout_ms'> = { cp_host: 'controller', access_token: 'token', connection_timeout_secs: 'timeout_ms' };

/**
 * The settings of an octavius_client.yaml, and one line for each key left behind. A file that is
 * not YAML, not a mapping, or names no controller is a ConfigError naming the file (and line).
 */
export function readOctaviusConfig(path: string): { values: Partial<ClientConfig>; skipped: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(path, code === 'ENOENT' ? 'file not found; give the path of octavius_client.yaml' : `cannot read the file (${code ?? String(err)})`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const at = lines.linePos(e.pos[0]);
    throw new ConfigError(path, `invalid YAML at line ${at.line}, column ${at.col}: ${e.message.split('\n')[0]}`);
  }
  const raw = doc.toJS() as unknown;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(path, 'the file must hold a YAML mapping (CP_HOST: host:port, ACCESS_TOKEN: …)');
  const values: Partial<ClientConfig> = {};
  const skipped: string[] = [];
  for (const [key, v] of Object.entries(raw as Record<string, unknown>)) {
    const k = key.toLowerCase();
    const field = OCTAVIUS_KEYS[k];
    if (k === 'email_id') {
      skipped.push(`not imported: ${key} (GRID knows a caller by its token)`);
    } else if (!field) {
      skipped.push(`not imported: ${key} (not an Octavius client setting GRID knows: CP_HOST, ACCESS_TOKEN, CONNECTION_TIMEOUT_SECS)`);
    } else if (field === 'timeout_ms') {
      const secs = typeof v === 'number' ? v : Number(String(v).trim());
      if (!Number.isInteger(secs) || secs < 1) throw new ConfigError(path, `${key}: ${JSON.stringify(v)} must be a whole number of seconds ≥ 1`);
      values.timeout_ms = secs * 1000;
    } else {
      if (typeof v !== 'string' || v.trim() === '') throw new ConfigError(path, `${key}: ${JSON.stringify(v)} must be a non-empty string`);
      if (field === 'controller') values.controller = v.trim();
      else values.token = v.trim();
    }
  }
  if (values.controller === undefined) throw new ConfigError(path, 'CP_HOST: missing; the file must name the controller (CP_HOST: host:port)');
  return { values, skipped };
}

/** The first client config file that exists in lookup order, else the last (the user's own). */
export function effectiveConfigFile(cwd: string, env: NodeJS.ProcessEnv): string {
  const paths = clientConfigPaths(cwd, env);
  return paths.find((p) => existsSync(p)) ?? paths[paths.length - 1]!;
}
