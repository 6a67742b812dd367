// grid-cli config set / show: the client config file.

import type { Command } from 'commander';
import { clientConfigPaths, saveClientConfig } from '../../config/client.js';
import { ValidationError } from '../../errors.js';
import type { Act } from '../main.js';
import { json } from '../output.js';
import { existsSync } from 'node:fs';

export function registerConfigCommands(program: Command, act: Act): void {
  const config = program
    .command('config')
    .description("grid-cli's own settings: controller address and token")
    .addHelpText('after', '\nExamples:\n  $ grid-cli config set --controller grid.example.com:7070 --token "$TOKEN"\n  $ grid-cli config show');

  config
    .command('set')
    .description('save the controller address and/or token in the client config file')
    .option('--controller <host:port>', 'controller gRPC address')
    .option('--token <token>', 'bearer token')
    .option('--file <path>', 'config file to write (default: the one in effect)')
    .addHelpText('after', '\nExample:\n  $ grid-cli config set --controller grid.example.com:7070 --token "$TOKEN"')
    .action(
      act(
        async (ctx, o: { controller?: string; token?: string; file?: string }) => {
          if (!o.controller && !o.token) throw new ValidationError('config set: give --controller and/or --token');
          const file = o.file ?? effectiveConfigFile(ctx.io.cwd, ctx.io.env);
          await saveClientConfig(file, { controller: o.controller, token: o.token });
          ctx.io.out(`saved ${[o.controller && 'controller', o.token && 'token'].filter(Boolean).join(' and ')} in ${file}`);
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
        const shown = { controller: ctx.config.controller, token: ctx.config.token ? '(set)' : '(not set)', output: ctx.config.output, file: effectiveConfigFile(ctx.io.cwd, ctx.io.env) };
        ctx.io.out(ctx.output === 'json' ? json(shown) : Object.entries(shown).map(([k, v]) => `${k}: ${v}`).join('\n'));
      }),
    );
}

/** The first client config file that exists in lookup order, else the last (the user's own). */
export function effectiveConfigFile(cwd: string, env: NodeJS.ProcessEnv): string {
  const paths = clientConfigPaths(cwd, env);
  return paths.find((p) => existsSync(p)) ?? paths[paths.length - 1]!;
}
