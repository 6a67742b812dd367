// grid-cli nats-credentials: a NATS user for the request intake (execute --via nats), minted by
// the controller for this token. The key pair is made here; only its public key is sent.

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { newUserKey } from '../../bus/authority.js';
import { credsFileText } from '../../client/nats-submit.js';
import { saveClientConfig } from '../../config/client.js';
import type { Act } from '../main.js';
import { print } from '../render.js';
import { parsePositiveInt } from '../flags.js';
import { effectiveConfigFile } from './config.js';

function writePrivate(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
}

export function registerNatsCommands(program: Command, act: Act): void {
  program
    .command('nats-credentials')
    .description('get NATS credentials for submitting executions over NATS (execute --via nats); the token must be allowed to execute')
    .option('--out <file>', 'where to write the credentials file (default: nats.creds beside the client config in effect)')
    .option('--days <n>', 'how long they last, 1 to 365 days (default 30)')
    .option('--no-save', 'do not write nats_servers, nats_creds and nats_ca_file into the client config')
    .addHelpText(
      'after',
      [
        '',
        'The key pair is made here and its seed never leaves this machine: the controller signs a NATS',
        'user for its public key that may publish execution requests (grid.submit.execute) and hear only',
        'its own inbox. The file is written 0600; with the NATS servers\' CA beside it (…-ca.crt) when the',
        'controller has one. Every request still carries the token, which the controller checks.',
        '',
        'Examples:',
        '  $ grid-cli nats-credentials',
        '  $ grid-cli execute hello-world --arg NAME=ops --via nats --wait',
        '  $ grid-cli nats-credentials --out /etc/ci/grid-nats.creds --days 90 --no-save',
      ].join('\n'),
    )
    .action(
      act(async (ctx, o: { out?: string; days?: string; save: boolean }) => {
        const days = o.days !== undefined ? parsePositiveInt(o.days, '--days') : 0;
        const configFile = effectiveConfigFile(ctx.io.cwd, ctx.io.env);
        const out = resolve(ctx.io.cwd, o.out ?? resolve(dirname(configFile), 'nats.creds'));
        const key = newUserKey();
        const res = await ctx.client().ctl.issueNatsCredentials(key.publicKey, days);
        writePrivate(out, credsFileText(res.jwt, key.seed));
        let caFile = '';
        if (res.caPem) {
          caFile = `${out.replace(/\.creds$/, '')}-ca.crt`;
          writePrivate(caFile, res.caPem);
        }
        if (o.save) saveClientConfig(configFile, { nats_servers: res.servers, nats_creds: out, nats_ca_file: caFile });
        const shown = {
          creds: out,
          ca_file: caFile,
          servers: res.servers,
          subject: res.subject,
          inbox_prefix: res.inboxPrefix,
          expires_at: new Date(Number(res.expiresAtMs)).toISOString(),
          saved_in: o.save ? configFile : '',
        };
        const lines = [
          `wrote NATS credentials to ${out}${caFile ? ` (the NATS servers' CA to ${caFile})` : ''}; they expire ${shown.expires_at}`,
          `they may publish on ${res.subject} and hear ${res.inboxPrefix}.>, nothing else`,
        ];
        if (o.save) lines.push(`saved nats_servers (${res.servers.join(',')}), nats_creds${caFile ? ' and nats_ca_file' : ''} in ${configFile}; submit with: grid-cli execute JOB --via nats`);
        print(ctx, { data: shown, names: [out], text: () => lines.join('\n') }, 'nats-credentials');
      }),
    );
}
