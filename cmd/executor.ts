#!/usr/bin/env node
// executor entry point: `executor register` once, then `executor start`.

import { versionLine } from '../src/version.js';
import { Command, Option } from 'commander';
import { loadExecutorConfig, type ExecutorConfig } from '../src/config/executor.js';
import { envWithSecretFiles } from '../src/config/secret-files.js';
import { executorExitCode } from '../src/errors.js';
import { Agent } from '../src/executor/agent.js';
import { registerExecutor } from '../src/executor/register.js';
import { createLogger, type Logger } from '../src/util/log.js';
import { runMain } from '../src/util/main.js';
import { onShutdownSignal } from '../src/util/signals.js';
import { routeStrayOutput } from '../src/util/stray-output.js';

interface Flags {
  config?: string;
  controller?: string;
  name?: string;
  groups?: string;
  runners?: string;
  concurrency?: string;
  pingInterval?: string;
  stateFile?: string;
  caFile?: string;
  natsServers?: string;
  registrationToken?: string;
  logLevel?: string;
  logFormat?: string;
  replace?: boolean;
  metricsAddress?: string;
}

/** The logger once it writes JSON, so that a failure is reported as a JSON line too. */
let jsonLog: Logger | undefined;

function loggerFor(cfg: ExecutorConfig): Logger {
  const log = createLogger({ level: cfg.log_level, format: cfg.log_format, name: 'executor' });
  if (cfg.log_format === 'json') {
    jsonLog = log;
    routeStrayOutput(log);
  }
  return log;
}

function load(flags: Flags): ExecutorConfig {
  return loadExecutorConfig({
    file: flags.config,
    env: process.env,
    flags: {
      controller: flags.controller,
      name: flags.name,
      groups: flags.groups,
      runners: flags.runners,
      concurrency: flags.concurrency,
      ping_interval_seconds: flags.pingInterval,
      state_file: flags.stateFile,
      ca_file: flags.caFile,
      nats_servers: flags.natsServers,
      registration_token: flags.registrationToken,
      log_level: flags.logLevel,
      metrics_address: flags.metricsAddress,
      log_format: flags.logFormat,
    } as never,
  });
}

function withCommonOptions(cmd: Command): Command {
  return cmd
    .exitOverride()
    .option('-c, --config <file>', 'executor config file (JSON)')
    .option('--controller <host:port[,host:port…]>', 'controller gRPC address; several replicas separated by commas, failed over in turn')
    .option('--name <name>', 'executor name (default: host name)')
    .option('--groups <g1,g2>', 'groups this executor belongs to')
    .option('--runners <r1,r2>', 'runners it offers: host, kubernetes')
    .option('--concurrency <n>', 'tasks it runs at once')
    .option('--ping-interval <seconds>', 'heartbeat interval (ping_interval)')
    .option('--state-file <file>', 'where the id and secret are kept')
    .option('--ca-file <file>', "PEM of the CA that signed the controller's certificate (ca_file)")
    .option('--nats-servers <url[,url…]>', 'NATS servers to use, comma-separated (nats_servers; default: every URL the controller hands over at register)')
    .addOption(new Option('--log-level <level>').choices(['debug', 'info', 'warn', 'error']))
    .addOption(new Option('--log-format <format>', 'text, or json: one JSON object a line').choices(['text', 'json']));
}

const program = new Command('executor')
  .version(versionLine('executor'), '-V, --version', 'print the version of the executor and of its API')
  .description('A GRID executor: registers with a controller, heartbeats, and runs the jobs sent to it.')
  .exitOverride()
  .addHelpText('after', '\nExamples:\n  $ executor register --config executor.json\n  $ executor start --config executor.json');

program.addCommand(
  withCommonOptions(new Command('register'))
    .description('register with the controller (bootstrap token → id and secret, kept in the state file)')
    .option('--registration-token <token>', 'bootstrap token (env GRID_REGISTRATION_TOKEN or GRID_REGISTRATION_TOKEN_FILE)')
    .option('--replace', 'take over the name from an executor registered under it before (its state file, or an admin --token)')
    .option('--token <token>', 'admin API token, for --replace of another executor (env GRID_TOKEN or GRID_TOKEN_FILE)')
    .addHelpText(
      'after',
      '\nExamples:\n  $ GRID_REGISTRATION_TOKEN=… executor register --controller grid.example.com:7070 --ca-file grid-ca.crt --name web-1 --groups web,eu\n  $ GRID_TOKEN=<admin token> executor register --name web-1 --replace',
    )
    .action(async (flags: Flags & { token?: string }) => {
      const cfg = load(flags);
      const log = loggerFor(cfg);
      const token = flags.token ?? envWithSecretFiles(process.env, ['GRID_TOKEN'], process.cwd()).GRID_TOKEN;
      const id = await registerExecutor(cfg, { replace: !!flags.replace, ...(token ? { token } : {}) }, log);
      // In json, the log line registerExecutor wrote says as much.
      if (cfg.log_format === 'text') {
        process.stdout.write(`${id.created ? 'registered' : 'already registered'} as ${id.name} (${id.executor_id}); state in ${cfg.state_file}\n`);
      }
    }),
);

program.addCommand(
  withCommonOptions(new Command('start'))
    .description('run the executor: heartbeat and take work until SIGINT/SIGTERM')
    .option('--metrics-address <host:port>', 'serve /metrics, /livez and /readyz here, plain HTTP without a token (metrics_address; default: none)')
    .addHelpText('after', '\nExamples:\n  $ executor start --config /etc/grid/executor.json\n  $ executor start --config /etc/grid/executor.json --controller grid-1.example.com:7070,grid-2.example.com:7070\n  $ executor start --config /etc/grid/executor.json --metrics-address 127.0.0.1:9102')
    .action(async (flags: Flags) => {
      const cfg = load(flags);
      const log = loggerFor(cfg);
      const agent = new Agent(cfg, log);
      onShutdownSignal(log, () => agent.close());
      await agent.start();
      process.exitCode = await agent.done;
      process.exit();
    }),
);

// A refusal by the controller exits 77 (ExitCode.REFUSED): see config/systemd/grid-executor.service.
await runMain(program, 'executor', executorExitCode, () => jsonLog);
