#!/usr/bin/env node
// controller entry point: `controller start` (and `controller dev`, which `make dev` runs).

import { versionLine } from '../src/version.js';
import { Command, Option } from 'commander';
import { loadControllerConfig } from '../src/config/controller.js';
import { applyHeapGrowth } from '../src/util/heap.js';
import { relative, resolve } from 'node:path';
import { NatsAuthority } from '../src/bus/authority.js';
import { Controller } from '../src/controller/app.js';
import { ConfigError } from '../src/errors.js';
import { LocalExecutor } from '../src/dev/local-executor.js';
import { createLogger, type Level, type Logger, type LogFormat } from '../src/util/log.js';
import { runMain } from '../src/util/main.js';
import { onShutdownSignal, type Shutdown } from '../src/util/signals.js';
import { routeStrayOutput } from '../src/util/stray-output.js';

interface StartFlags {
  config?: string;
  grpcAddress?: string;
  httpAddress?: string;
  dataDir?: string;
  etcdEndpoints?: string;
  natsServers?: string;
  auth?: 'tokens' | 'none';
  logLevel?: Level;
  logFormat?: LogFormat;
  pingDeadline?: string;
}

/** The logger once it writes JSON, so that a failure is reported as a JSON line too. */
let jsonLog: Logger | undefined;

/**
 * Loads the config and starts the controller, with the shutdown signals handled from before
 * anything is started. Resolves undefined when a signal came first: the controller then stops
 * what it had started and the process exits.
 */
async function start(flags: StartFlags, signals: NodeJS.Signals[]): Promise<{ controller: Controller; shutdown: Shutdown } | undefined> {
  const cfg = await loadControllerConfig({
    file: flags.config,
    env: process.env,
    flags: {
      grpc_address: flags.grpcAddress,
      http_address: flags.httpAddress,
      data_dir: flags.dataDir,
      etcd: flags.etcdEndpoints !== undefined ? { endpoints: splitList(flags.etcdEndpoints) } : undefined,
      nats: flags.natsServers !== undefined ? { servers: splitList(flags.natsServers) } : undefined,
      auth: flags.auth,
      log_level: flags.logLevel,
      log_format: flags.logFormat,
      executor_ping_deadline_seconds: flags.pingDeadline !== undefined ? Number(flags.pingDeadline) : undefined,
    },
  });
  applyHeapGrowth(cfg.heap_growth_percent);
  const log = createLogger({ level: cfg.log_level, format: cfg.log_format, name: 'controller' });
  if (cfg.log_format === 'json') {
    jsonLog = log;
    routeStrayOutput(log);
  }
  const controller = Controller.create(cfg, log);
  // A second signal kills the embedded servers and the local executor rather than leaving them.
  const shutdown = onShutdownSignal(log, () => controller.close(), { signals, hurry: () => controller.kill() });
  try {
    await controller.run();
  } catch (err) {
    if (shutdown.signal.aborted) return undefined;
    throw err;
  }
  return { controller, shutdown };
}

function splitList(s: string): string[] {
  return s.split(',').map((x) => x.trim()).filter(Boolean);
}

function startCommand(name: string, description: string, example: string): Command {
  return new Command(name)
    .exitOverride()
    .description(description)
    .option('-c, --config <file>', 'controller config file (JSON)')
    .option('--grpc-address <host:port>', 'address to serve gRPC on (default 127.0.0.1:7070)')
    .option('--http-address <host:port>', 'address to serve the HTTP/JSON API on (default 127.0.0.1:7080; "" = none)')
    .option('--data-dir <dir>', 'data directory for the embedded servers (default ./.grid)')
    .option('--etcd-endpoints <urls>', 'comma-separated etcd endpoints (with --nats-servers: no embedded servers)')
    .option('--nats-servers <urls>', 'comma-separated NATS URLs')
    .addOption(new Option('--auth <mode>', 'tokens, or none to let every caller in as admin').choices(['tokens', 'none']))
    .addOption(new Option('--log-level <level>').choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--log-format <format>', 'text, or json: one JSON object a line').choices(['text', 'json']))
    .option('--ping-deadline <seconds>', 'executor_ping_deadline: an executor silent this long is EXPIRED')
    .addHelpText('after', `\nExample:\n  ${example}`);
}

const program = new Command('controller')
  .version(versionLine('controller'), '-V, --version', 'print the version of the controller and of its API')
  .description('The GRID controller: gRPC API, dispatcher, event recorder and executor registry.')
  .exitOverride()
  .addHelpText('after', '\nExamples:\n  $ controller start\n  $ controller start --config /etc/grid/controller.json');

program.addCommand(
  startCommand(
    'start',
    'run the controller (with no etcd/NATS configured: embedded ones under the data directory)',
    '$ controller start --etcd-endpoints http://10.0.0.5:2379 --nats-servers nats://10.0.0.6:4222',
  ).action(async (flags: StartFlags) => {
    // Log rotation: after the audit file was moved away, SIGHUP makes later lines go to a new
    // one. Only here: in `dev`, SIGHUP (its terminal closed) stops everything. Handled from the
    // start, so that one arriving early does not end the process with its servers left running.
    let reopen: (() => void) | undefined;
    process.on('SIGHUP', () => reopen?.());
    const started = await start(flags, ['SIGINT', 'SIGTERM']);
    if (started) reopen = () => started.controller.audit?.reopen();
  }),
);

program.addCommand(
  startCommand('dev', 'run a local GRID: embedded NATS and etcd, this controller, and a local executor', '$ controller dev').action(
    async (flags: StartFlags) => {
      // Whatever reaches a terminal's process group stops it all: Ctrl-C, Ctrl-\\, a closed terminal, kill.
      const started = await start(flags, ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT']);
      if (!started || started.shutdown.signal.aborted) return;
      const { controller } = started;
      const dev = controller.devAccess;
      if (!dev) {
        controller.log.warn('dev: not on the embedded default with generated tokens, so no local executor is started');
        return;
      }
      const executor = new LocalExecutor({
        dataDir: controller.cfg.data_dir,
        controller: controller.address,
        registrationToken: dev.registrationToken,
        ...(controller.tls ? { caFile: controller.tls.caFile } : {}),
        logLevel: controller.cfg.log_level,
        logFormat: controller.cfg.log_format,
        log: controller.log.named('dev'),
      });
      // Before it starts: a signal while it registers stops it (and its registration) too.
      controller.beforeClose(() => executor.stop(), () => executor.kill());
      try {
        await executor.start();
      } catch (err) {
        if (started.shutdown.signal.aborted) return;
        // Nothing is left running when dev gives up either.
        await controller.close();
        throw err;
      }
      const hint = ['npx grid-cli create config/examples/hello.json', 'npx grid-cli list', 'npx grid-cli executors list'];
      const shown = (path: string) => relative(process.cwd(), path) || path;
      const tokenFile = shown(dev.clientConfigPath);
      const registrationFile = shown(dev.registrationTokenFile);
      if (controller.cfg.log_format === 'json') {
        controller.log.info('GRID is up', {
          try: hint.join('; '),
          registration_token_file: registrationFile,
          ...(controller.dashboardUrl ? { dashboard: controller.dashboardUrl, token_file: tokenFile } : {}),
        });
      } else {
        const dashboard = controller.dashboardUrl ? `The dashboard: ${controller.dashboardUrl} (sign in with the token in ${tokenFile})\n` : '';
        const more = `Another executor registers with the token in ${registrationFile} (README: "Adding an executor")\n`;
        process.stderr.write(`\nGRID is up. In another shell:\n${hint.map((h) => `  ${h}\n`).join('')}${dashboard}${more}\n`);
      }
    },
  ),
);

program.addCommand(
  new Command('nats-config')
    .exitOverride()
    .description(
      'print the operator/resolver block an external nats-server needs to trust GRID (decentralized JWT auth, NATS-based resolver; the same block on every server of a cluster); ' +
        'creates the operator and account keys in the auth dir first if they are not there',
    )
    .option('--auth-dir <dir>', 'where the keys live (the controller\'s nats.auth_dir)')
    .option('-c, --config <file>', 'take nats.auth_dir from this controller config')
    .option('--resolver-dir <dir>', 'where nats-server keeps the account JWTs GRID pushes to it', '/var/lib/nats/grid-jwt')
    .addHelpText(
      'after',
      '\nExample:\n  $ controller nats-config --auth-dir /etc/grid/nats-auth > /etc/nats/grid-auth.conf\n' +
        '  # then in nats-server.conf:  include grid-auth.conf   and in the controller config:  "nats": { "auth_dir": "/etc/grid/nats-auth" }\n' +
        '  # the controller pushes account updates (revoked executors) to the servers itself, over the system account',
    )
    .action(async (flags: { authDir?: string; config?: string; resolverDir: string }) => {
      let dir = flags.authDir;
      if (!dir && flags.config) dir = (await loadControllerConfig({ file: flags.config, env: process.env })).nats.auth_dir;
      if (!dir) throw new ConfigError('--auth-dir', 'missing; say where the keys are (or are to be made), e.g. --auth-dir /etc/grid/nats-auth');
      const authority = await NatsAuthority.open(resolve(dir), { create: true, configKey: '--auth-dir' });
      process.stdout.write(await authority.serverConfig(flags.resolverDir));
    }),
);

await runMain(program, 'controller', undefined, () => jsonLog);
