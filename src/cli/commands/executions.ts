// grid-cli execute / status / executions list / getlogs / cancel: running jobs and following them.

import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import { Argument, Option, type Command } from 'commander';
import { completesWith } from '../completion/tree.js';
import { submitOverNats, type NatsSubmitOptions } from '../../client/nats-submit.js';
import type { ClientConfig } from '../../config/client.js';
import { ConfigError, ExitCode, ValidationError } from '../../errors.js';
import { parseArgPairs } from '../../domain/args.js';
import { checkIdempotencyKey } from '../../domain/idempotency.js';
import { askForMissingSecrets, resolveArgValues } from '../arg-values.js';
import { paintFor } from '../colour.js';
import type { ExecuteRequest, ExecuteResponse, ListExecutionsResponse } from '../../gen/grid/v1/controller.js';
import { ExecutionState, TaskState, type Execution } from '../../gen/grid/v1/types.js';
import type { GridClient } from '../../client/client.js';
import type { CliContext } from '../context.js';
import { ExitWith, type Act } from '../main.js';
import { table } from '../output.js';
import { print, render, type Shown } from '../render.js';
import {
  EXECUTION_STATE_NAMES,
  executionJson,
  executionsShown,
  executionStateName,
  isTerminalExecution,
  parseExecutionState,
  statusShown,
} from '../executions-format.js';
import { parseCountOrPercent, parseDuration, parsePositiveInt, parseSeconds, parseSince, parseWholeNumber } from '../flags.js';
import { LogPrinter, prefixModeFor, printLogs } from '../logprinter.js';
import { Progress, watchWithProgress } from '../progress.js';
import { retryWhileUnavailable, type RetryOptions } from '../retry.js';
import { watchList, WATCH_INTERVAL_MS, type ListView } from '../watch.js';

export interface ExecuteOptions {
  jobName?: string;
  arg?: string[];
  args?: string[];
  target?: string;
  wait?: boolean;
  follow?: boolean;
  timeout?: string;
  waitOffline?: string;
  batchSize?: string;
  maxFailures?: string;
  dryRun?: boolean;
  idempotencyKey?: string;
  retryFor?: string;
  via?: string;
  natsServers?: string;
  natsCreds?: string;
  natsCaFile?: string;
}

/** The front door execute goes through: the controller's gRPC API, or the NATS request intake. */
export function parseVia(text: string | undefined): 'grpc' | 'nats' {
  const v = (text ?? 'grpc').trim().toLowerCase();
  if (v === 'grpc' || v === 'nats') return v;
  throw new ValidationError(`--via: ${JSON.stringify(text)} must be grpc or nats`);
}

/**
 * How `execute --via nats` reaches the intake: the flags, else the client config (and its
 * GRID_NATS_* variables). A missing URL is an error that names the setting.
 */
export function natsSubmitOptions(cfg: ClientConfig, o: ExecuteOptions, cwd: string, waitMs: number): NatsSubmitOptions {
  const servers = o.natsServers !== undefined ? o.natsServers.split(',').map((x) => x.trim()).filter(Boolean) : cfg.nats_servers;
  if (servers.length === 0) {
    throw new ConfigError(
      'nats_servers',
      "missing: --via nats needs the URL of GRID's NATS: give --nats-servers nats://HOST:4222, set GRID_NATS_SERVERS, or run grid-cli nats-credentials, which saves it",
    );
  }
  return {
    servers,
    credsFile: o.natsCreds !== undefined ? resolve(cwd, o.natsCreds) : cfg.nats_creds,
    caFile: o.natsCaFile !== undefined ? resolve(cwd, o.natsCaFile) : cfg.nats_ca_file,
    token: cfg.token,
    waitMs,
  };
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/**
 * The ExecuteRequest for `execute JOB [flags]`; every bad flag is a ValidationError (exit 2).
 * Without --idempotency-key, a run gets a random key of its own (a dry run none), so that its
 * retries are safe.
 */
export function buildExecuteRequest(job: string | undefined, o: ExecuteOptions): ExecuteRequest {
  if (job && o.jobName && job !== o.jobName) {
    throw new ValidationError(`execute: the job is named twice ("${job}" and --job-name "${o.jobName}"); give one`);
  }
  const name = job ?? o.jobName;
  if (!name) throw new ValidationError('execute: name the job: grid-cli execute JOB [--arg K=V]…');
  return {
    job: name,
    args: parseArgPairs({ arg: o.arg, args: o.args }),
    target: o.target?.trim() ?? '',
    timeoutSeconds: o.timeout !== undefined ? parseSeconds(o.timeout, '--timeout') : 0,
    waitOfflineMs: o.waitOffline !== undefined ? parseDuration(o.waitOffline, '--wait-offline') : 0,
    batchSize: o.batchSize !== undefined ? parseCountOrPercent(o.batchSize, '--batch-size', 1) : '',
    maxFailures: o.maxFailures !== undefined ? parseCountOrPercent(o.maxFailures, '--max-failures', 0) : '',
    dryRun: !!o.dryRun,
    idempotencyKey: o.idempotencyKey !== undefined ? checkIdempotencyKey(o.idempotencyKey, '--idempotency-key') : o.dryRun ? '' : randomUUID(),
  };
}

/**
 * Execute, sent again with the same idempotency key while the controller is unavailable (one
 * line on stderr per retry). Never without a key: the failed call may have started the execution.
 */
export function executeWithRetry(client: GridClient, req: ExecuteRequest, err: (line: string) => void, o: RetryOptions = {}): Promise<ExecuteResponse> {
  if (!req.idempotencyKey) return client.ctl.execute(req);
  return retryWhileUnavailable(() => client.ctl.execute(req), {
    ...o,
    onRetry: (e, ms) => err(`unavailable: ${e.message.replace(/\.$/, '')}; retrying execute with the same idempotency key in ${ms / 1000}s`),
  });
}

/**
 * What follows a page of `executions list` (on stderr, so the table stays clean): the command
 * for the next page, or on the last page whether older executions were pruned.
 */
export function listFooter(res: ListExecutionsResponse, o: { job?: string; state?: string; limit?: string }): string[] {
  if (res.nextPage) {
    const flags = [o.job !== undefined ? `--job ${o.job}` : '', o.state !== undefined ? `--state ${o.state}` : '', o.limit !== undefined ? `--limit ${o.limit}` : '']
      .filter(Boolean)
      .join(' ');
    return [`more: grid-cli executions list ${flags ? `${flags} ` : ''}--page-after ${res.nextPage}`];
  }
  if (res.prunedBeforeMs) {
    return [`older executions were pruned: finished ones created up to ${new Date(Number(res.prunedBeforeMs)).toISOString()} are gone (kept: ${res.retention})`];
  }
  return [];
}

/** `execution 01J… dispatched: hello-world on all` */
export function executeLine(res: ExecuteResponse, req: ExecuteRequest): string {
  const e = res.execution;
  const id = res.executionId || e?.id || '?';
  const state = e ? executionStateName(e.state).toLowerCase() : 'queued';
  const target = e?.target || req.target || "the job's default target";
  const reused = res.reused ? ' (started earlier with this idempotency key)' : '';
  return `execution ${id} ${state}: ${e?.job || req.job} on ${target}${reused}`;
}

export function executeResponseJson(res: ExecuteResponse) {
  return { ...res, execution: res.execution ? executionJson(res.execution) : undefined };
}

/** What execute prints without --wait or --follow; `name` is the execution's id, or for a dry run the executors it would run on. */
export function executeShown(res: ExecuteResponse, req: ExecuteRequest): Shown {
  if (req.dryRun) {
    return { data: executeResponseJson(res), names: res.dryRun.filter((r) => !r.skipped).map((r) => r.executorName || r.executorId), text: () => dryRunText(res, req) };
  }
  const id = res.executionId || res.execution?.id;
  return { data: executeResponseJson(res), names: id ? [id] : [], text: () => executeLine(res, req) };
}

/** The executors a dry run resolved the target to. */
export function dryRunText(res: ExecuteResponse, req: ExecuteRequest): string {
  const rows = res.dryRun;
  const target = req.target || "the job's default target";
  if (rows.length === 0) return `dry run: ${req.job} on ${target} matches no executors`;
  const run = rows.filter((r) => !r.skipped).length;
  const head = `dry run: ${req.job} on ${target} would run on ${run} of ${rows.length} ${rows.length === 1 ? 'executor' : 'executors'}`;
  return (
    head +
    '\n' +
    table(
      ['EXECUTOR', 'ID', 'RUN', 'REASON'],
      rows.map((r) => [r.executorName, r.executorId, r.skipped ? 'skipped' : 'yes', r.reason]),
    )
  );
}

function idFrom(command: string, id: string | undefined, jobId: string | undefined): string {
  if (id && jobId && id !== jobId) {
    throw new ValidationError(`${command}: the execution is named twice ("${id}" and --job-id "${jobId}"); give one`);
  }
  const v = (id ?? jobId)?.trim();
  if (!v) throw new ValidationError(`${command}: name the execution: grid-cli ${command} ID`);
  return v;
}

/** Waits (quietly) until the execution is terminal: GetExecution, then WatchExecution if needed. */
async function finalExecution(client: GridClient, id: string): Promise<Execution> {
  const e = await client.ctl.getExecution(id);
  if (isTerminalExecution(e.state)) return e;
  return (await watchWithProgress(client.ctl.watchExecution(id))) ?? e;
}

/**
 * How many tasks the execution has, waiting for the dispatcher when it has not planned them yet
 * (right after execute): the log prefix is chosen from it, and a line printed without a prefix
 * cannot be labelled later.
 */
async function dispatchedTaskCount(client: GridClient, e: Execution): Promise<number> {
  if (e.tasks.length > 0 || isTerminalExecution(e.state)) return e.tasks.length;
  const ac = new AbortController();
  try {
    for await (const x of client.ctl.watchExecution(e.id, ac.signal)) {
      if (x.tasks.length > 0 || isTerminalExecution(x.state)) return x.tasks.length;
    }
  } finally {
    ac.abort();
  }
  return (await client.ctl.getExecution(e.id)).tasks.length;
}

/** Streams the execution's logs through a printer; `json` prints one object per line. */
async function streamLogs(
  ctx: CliContext,
  id: string,
  opts: { follow: boolean; executor?: string; taskCount: number; json: boolean; toStderr?: boolean; timestamps?: boolean; tailLines?: number; sinceMs?: number },
): Promise<void> {
  const sink = opts.toStderr ? { out: ctx.io.err, err: ctx.io.err } : { out: ctx.io.out, err: ctx.io.err };
  const printer = new LogPrinter(sink, { prefix: prefixModeFor(opts.taskCount, opts.executor), json: opts.json, timestamps: opts.timestamps });
  const { follow, executor, tailLines, sinceMs } = opts;
  await printLogs(ctx.client().ctl.getLogs({ executionId: id, follow, executor, tailLines, sinceMs }), printer);
}

/**
 * The exit code of a command that waited for an execution to end: 0 if it succeeded, 4 if it
 * timed out, 5 if it was cancelled, 1 otherwise (failed).
 */
export function executionExitCode(state: ExecutionState): number {
  if (state === ExecutionState.EXECUTION_STATE_SUCCEEDED) return ExitCode.OK;
  if (state === ExecutionState.EXECUTION_STATE_TIMED_OUT) return ExitCode.TIMED_OUT;
  if (state === ExecutionState.EXECUTION_STATE_CANCELLED) return ExitCode.CANCELLED;
  return ExitCode.FAILURE;
}

/** Prints the final status and exits with executionExitCode. */
function finish(ctx: CliContext, e: Execution): void {
  print(ctx, statusShown(e, paintFor(ctx)), 'execute');
  const code = executionExitCode(e.state);
  if (code !== ExitCode.OK) throw new ExitWith(code);
}

export function registerExecutionCommands(program: Command, act: Act): void {
  program
    .command('execute')
    .description('execute a job on its target; --wait shows progress until it ends, --follow streams its logs')
    .addArgument(completesWith('jobs', new Argument('[job]', 'job name')))
    .addOption(completesWith('jobs', new Option('--job-name <name>', 'same as JOB (Octavius spelling)')))
    .option('--arg <K=V>', 'an argument, the value taken whole; K=@FILE reads it from a file, K=- from stdin; repeat for more', collect)
    .option('--args <K=V,K2=V2>', 'comma-separated arguments (Octavius spelling)', collect)
    .addOption(completesWith('targets', new Option('--target <target>', "all, group:G, node:NAME, any, any:G, comma-separated (default: the job's)")))
    .option('--wait', 'show progress until the execution ends; exit 0 if it succeeded, 1 failed, 4 timed out, 5 cancelled')
    .option('--follow', 'stream the logs until the execution ends; exit 0 if it succeeded, 1 failed, 4 timed out, 5 cancelled')
    .option('--timeout <seconds>', "execution timeout in seconds (or 90s, 10m, 1h30m); default: the job's")
    .option('--wait-offline <duration>', "keep offline executors' tasks queued this long (90s, 10m, 2h, 1h30m or seconds)")
    .option('--batch-size <N|N%>', 'roll out in waves of N executors (or N% of them)')
    .option('--max-failures <N|N%>', 'stop the rollout after this many failed executors')
    .option('--dry-run', 'show the executors the target resolves to, without running anything')
    .option('--idempotency-key <key>', 'the same key within 24 h returns the execution it started instead of starting another (default: a new random key per run)')
    .option('--retry-for <duration>', 'while the controller is unavailable, send execute again with the same key for this long (default 30s; 0 = no retry); with --via nats, how long to wait for the answer')
    .option('--via <door>', 'grpc (default), or nats: submit the request through the NATS request intake')
    .option('--nats-servers <urls>', 'with --via nats: NATS URLs, comma-separated (config nats_servers, env GRID_NATS_SERVERS)')
    .option('--nats-creds <file>', 'with --via nats: NATS credentials of a user allowed to submit (config nats_creds, env GRID_NATS_CREDS)')
    .option('--nats-ca-file <file>', "with --via nats: the CA of the NATS servers' certificates (config nats_ca_file, env GRID_NATS_CA_FILE)")
    .addHelpText(
      'after',
      [
        '',
        'With --output json or yaml: the ExecuteResponse; with --wait or --follow, the final execution (and',
        'the logs of --follow on stderr). With --output name: the execution\'s id (a dry run: the executors',
        'it would run on).',
        '',
        'Secrets: a value on the command line shows in the process list and the shell history. Give it',
        'as K=@FILE (read from the file, one trailing newline dropped) or K=- (read from stdin; typed',
        'without echo on a terminal). On a terminal, a required secret left out is asked for without',
        'echo. A value that starts with "@" is written with "@@" (K=@@team is "@team").',
        '',
        'Retries: every execute carries an idempotency key (up to 128 printable ASCII characters, no',
        'spaces; a random one unless --idempotency-key gives it). While the controller is unavailable,',
        'execute is sent again with the same key for up to 30 s (--retry-for), so a request that got through is not',
        'started twice. For 24 h the same key from the same token returns the execution it started; with',
        'different job, arguments, target or limits it is refused. A dry run ignores the key.',
        '',
        'Over NATS (--via nats): the request is published to the controllers\' request stream with the',
        'token in a header, and a controller answers with the execution (or the refusal). NATS admits',
        'only users allowed to submit: get credentials once with grid-cli nats-credentials, which saves',
        'nats_servers, nats_creds and nats_ca_file in the client config. While no controller can take',
        'the request (etcd down, say) it waits in the stream, one "waiting" line on stderr each time a',
        'controller says so; it runs once they are back. Without an answer within --retry-for (default',
        '30s) execute exits 3, and the request still runs later. --wait and --follow then watch over',
        'gRPC, as without --via. Required secrets are not asked for: give them as K=@FILE or K=-.',
        '',
        'Examples:',
        '  $ grid-cli execute hello-world --arg NAME=ops --wait',
        '  $ grid-cli execute db-backup --arg DATABASE=orders --arg DB_PASSWORD=@/run/secrets/db --wait',
        '  $ pass show db/backup | grid-cli execute db-backup --arg DATABASE=orders --arg DB_PASSWORD=-',
        '  $ grid-cli execute resize --args COUNT=3,MODE=fast --target group:web --batch-size 25% --follow',
        '  $ grid-cli execute --job-name hello-world --args NAME=ops --target all --dry-run',
        '  $ grid-cli execute deploy --arg VERSION=1.4.2 --target group:web --idempotency-key deploy-web-1.4.2',
        '  $ grid-cli execute hello-world --arg NAME=ops --via nats --nats-servers tls://nats.example.com:4222 --nats-creds ci.creds',
      ].join('\n'),
    )
    .action(
      act(
        async (ctx, job: string | undefined, o: ExecuteOptions) => {
          const req = buildExecuteRequest(job, o);
          const via = parseVia(o.via);
          const retryFor = o.retryFor !== undefined ? parseDuration(o.retryFor, '--retry-for') : undefined;
          const nats = via === 'nats' ? natsSubmitOptions(ctx.config, o, ctx.io.cwd, retryFor ?? 30_000) : undefined;
          req.args = await resolveArgValues(req.args, ctx.io);
          const client = ctx.client();
          let res: ExecuteResponse;
          if (nats) {
            const said = new Set<string>();
            const onWaiting = (reason: string) => {
              if (!said.has(reason)) ctx.io.err(`waiting: ${reason.replace(/\.$/, '')}; the request stays queued and runs when a controller can take it`);
              said.add(reason);
            };
            res = await submitOverNats({ ...nats, onWaiting }, req);
          } else {
            await askForMissingSecrets(client, req, ctx.io.stdin);
            res = await executeWithRetry(client, req, ctx.io.err, retryFor !== undefined ? { budgetMs: retryFor } : {});
          }
          // json, yaml and name print one record at the end; what people read goes to stderr or nowhere.
          const forScripts = ctx.output !== 'table' && ctx.output !== 'wide';
          if (req.dryRun || (!o.wait && !o.follow)) return print(ctx, executeShown(res, req), 'execute');

          const id = res.executionId || res.execution?.id;
          if (!id) throw new Error('the controller did not say which execution it started');
          let final: Execution | undefined;
          if (o.follow) {
            // stdout carries the logs: the id line goes to stderr.
            if (!forScripts) ctx.io.err(executeLine(res, req));
            const taskCount = await dispatchedTaskCount(client, res.execution ?? (await client.ctl.getExecution(id)));
            await streamLogs(ctx, id, { follow: true, taskCount, json: false, toStderr: forScripts });
            final = await finalExecution(client, id);
            if (!forScripts) ctx.io.out('');
          } else {
            if (!forScripts) ctx.io.out(executeLine(res, req));
            const progress = forScripts ? undefined : new Progress(ctx.io, paintFor(ctx));
            if (res.execution) progress?.update(res.execution);
            final = await watchWithProgress(client.ctl.watchExecution(id), progress);
            if (!final || !isTerminalExecution(final.state)) final = await finalExecution(client, id);
            if (!forScripts) ctx.io.out('');
          }
          finish(ctx, final);
        },
      ),
    );

  program
    .command('status')
    .description("show an execution: its state, who asked, how long it took and each executor's task")
    .argument('[id]', 'execution id')
    .option('--job-id <id>', 'same as ID (Octavius spelling)')
    .addHelpText(
      'after',
      '\nWith --output json: the execution plus a `workers` map (executor name → state, exit_code, attempts,\nstarted_at, finished_at, reason).\n\nExamples:\n  $ grid-cli status 01JD3V0Q8W4Z5M2K7T9XG6B1RA\n  $ grid-cli status --job-id 01JD3V0Q8W4Z5M2K7T9XG6B1RA --output json',
    )
    .action(
      act(async (ctx, id: string | undefined, o: { jobId?: string }) => {
        const e = await ctx.client().ctl.getExecution(idFrom('status', id, o.jobId));
        print(ctx, statusShown(e, paintFor(ctx)), 'status');
      }),
    );

  const executions = program
    .command('executions')
    .description('past and running executions')
    .addHelpText('after', '\nExamples:\n  $ grid-cli executions list\n  $ grid-cli executions list --job hello-world --state failed --limit 5');

  executions
    .command('list')
    .description('list executions, newest first: id, job, state, tasks, created, duration')
    .addOption(completesWith('jobs', new Option('--job <name>', 'only this job')))
    .option('--state <state>', `only this state: ${EXECUTION_STATE_NAMES.join(', ')}`)
    .option('--limit <n>', 'at most N executions (default 20, at most 1000)')
    .option('--page-after <id>', 'the next page: executions older than this one (the list prints the command)')
    .option('--watch', `keep the list current until Ctrl-C (asked again every ${WATCH_INTERVAL_MS / 1000} s)`)
    .addHelpText(
      'after',
      [
        '',
        "Finished executions are kept for a while (the controller's execution_retention_hours and",
        'execution_retention_max); the last page says when older ones were pruned.',
        '',
        '--watch: on a terminal the table is redrawn in place; otherwise a new table is printed when an',
        'execution starts or changes state, and with --output json one JSON array a line per change.',
        `The controller streams single executions (WatchExecution) but not the list over gRPC, so the`,
        `list is asked for every ${WATCH_INTERVAL_MS / 1000} s. Ctrl-C (or SIGTERM) ends it with exit 0.`,
        '',
        'Examples:',
        '  $ grid-cli executions list',
        '  $ grid-cli executions list --job hello-world --state failed --limit 5 --output json',
        '  $ grid-cli executions list --state failed --page-after 01JD3V0Q8W4Z5M2K7T9XG6B1RA',
        '  $ grid-cli executions list --job hello-world --watch',
        '  $ grid-cli executions list -o wide',
        '  $ grid-cli executions list --state running -o name | xargs -n1 grid-cli cancel',
      ].join('\n'),
    )
    .action(
      act(async (ctx, o: { job?: string; state?: string; limit?: string; pageAfter?: string; watch?: boolean }) => {
        const state = o.state !== undefined ? parseExecutionState(o.state) : ExecutionState.EXECUTION_STATE_UNSPECIFIED;
        const limit = o.limit !== undefined ? parsePositiveInt(o.limit, '--limit') : 0;
        if (o.watch && o.pageAfter !== undefined) {
          throw new ValidationError('--page-after: cannot be used with --watch, which follows the newest executions; leave one out');
        }
        let footer: string[] = [];
        const paint = paintFor(ctx);
        const look = async (): Promise<ListView> => {
          const res = await ctx.client().ctl.listExecutions({ job: o.job ?? '', state, limit, pageAfter: o.pageAfter ?? '' });
          const list = res.executions;
          footer = listFooter(res, o);
          const filtered = o.job !== undefined || o.state !== undefined;
          const empty = o.pageAfter ? '' : filtered ? 'no executions match' : 'no executions yet: grid-cli execute JOB starts one';
          const shown = executionsShown(list, empty, paint);
          // DURATION of a running execution grows by itself: the records decide what changed.
          return { text: render(ctx.output, shown, 'executions list') ?? '', json: shown.data, key: JSON.stringify(shown.data) };
        };
        if (o.watch) return watchList(ctx, 'grid-cli executions list', look);
        const view = await look();
        if (view.text) ctx.io.out(view.text);
        if (ctx.output !== 'json') for (const line of footer) ctx.io.err(line);
      }),
    );

  program
    .command('getlogs')
    .description("print an execution's logs; --follow streams them until it ends and exits with its result")
    .argument('[id]', 'execution id')
    .option('--job-id <id>', 'same as ID (Octavius spelling)')
    .option('--follow', 'keep streaming until the execution ends; exit 0 if it succeeded, 1 failed, 4 timed out, 5 cancelled')
    .option('--executor <name>', "only this executor's logs (name or id)")
    .option('--tail <N>', "only the last N lines of each executor's output (counted per executor, as kubectl logs --tail counts per pod)")
    .option('--since <duration|time>', 'only lines written since then: how long ago (10m, 2h, 1h30m) or an RFC 3339 time')
    .option('--timestamps', 'start each line with the time it was written (RFC 3339, UTC, milliseconds)')
    .addHelpText(
      'after',
      [
        '',
        'Lines are prefixed with [executor] when the execution runs on several executors; stderr goes to',
        'stderr. With --output json: one JSON object per line ({executor, executor_id, stream, line}, and',
        'time with --timestamps). The controller picks the lines: --tail and --since send only those.',
        'With --follow they pick where to start, then new lines follow.',
        '',
        'Examples:',
        '  $ grid-cli getlogs 01JD3V0Q8W4Z5M2K7T9XG6B1RA',
        '  $ grid-cli getlogs --job-id 01JD3V0Q8W4Z5M2K7T9XG6B1RA --follow --executor web-1',
        '  $ grid-cli getlogs 01JD3V0Q8W4Z5M2K7T9XG6B1RA --tail 20 --timestamps',
        '  $ grid-cli getlogs 01JD3V0Q8W4Z5M2K7T9XG6B1RA --since 10m --follow',
        '  $ grid-cli getlogs 01JD3V0Q8W4Z5M2K7T9XG6B1RA --since 2026-11-22T03:00:00Z',
      ].join('\n'),
    )
    .action(
      act(async (ctx, id: string | undefined, o: { jobId?: string; follow?: boolean; executor?: string; tail?: string; since?: string; timestamps?: boolean }) => {
        const tailLines = o.tail !== undefined ? parseWholeNumber(o.tail, '--tail') : undefined;
        const sinceMs = o.since !== undefined ? parseSince(o.since, '--since') : undefined;
        const execId = idFrom('getlogs', id, o.jobId);
        const client = ctx.client();
        const e = await client.ctl.getExecution(execId);
        const taskCount = o.follow && !o.executor ? await dispatchedTaskCount(client, e) : e.tasks.length;
        await streamLogs(ctx, execId, { follow: !!o.follow, executor: o.executor, taskCount, json: ctx.output === 'json', timestamps: !!o.timestamps, tailLines, sinceMs });
        if (!o.follow) return;
        const final = await finalExecution(client, execId);
        if (final.state !== ExecutionState.EXECUTION_STATE_SUCCEEDED) {
          ctx.io.err(`execution ${execId} ${executionStateName(final.state)}${final.reason ? `: ${final.reason}` : ''}`);
          throw new ExitWith(executionExitCode(final.state));
        }
      }),
    );

  program
    .command('cancel')
    .description('cancel an execution: tasks not started are dropped, running ones are stopped')
    .argument('[id]', 'execution id')
    .option('--job-id <id>', 'same as ID (Octavius spelling)')
    .option('--reason <text>', 'why (recorded on the execution)')
    .addHelpText('after', '\nExamples:\n  $ grid-cli cancel 01JD3V0Q8W4Z5M2K7T9XG6B1RA\n  $ grid-cli cancel 01JD3V0Q8W4Z5M2K7T9XG6B1RA --reason "wrong target"')
    .action(
      act(async (ctx, id: string | undefined, o: { jobId?: string; reason?: string }) => {
        const e = await ctx.client().ctl.cancelExecution(idFrom('cancel', id, o.jobId), o.reason ?? '');
        print(ctx, { data: executionJson(e), names: [e.id], text: () => cancelLine(e) }, 'cancel');
      }),
    );
}

/** `cancelled execution ID (2 tasks not started, 1 running task stopping)`, or what happened instead. */
export function cancelLine(e: Execution): string {
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  const notStarted = e.tasks.filter((t) => t.state === TaskState.TASK_STATE_CANCELLED && !t.startedAtMs).length;
  const stopped = e.tasks.filter((t) => t.state === TaskState.TASK_STATE_CANCELLED && t.startedAtMs).length;
  const stopping = e.tasks.filter((t) => t.state === TaskState.TASK_STATE_RUNNING).length;
  const parts = [
    notStarted && `${count(notStarted, 'task')} will not start`,
    stopped && `${count(stopped, 'task')} stopped`,
    stopping && `${count(stopping, 'running task')} being stopped`,
  ].filter(Boolean);
  const tasks = parts.length ? parts.join(', ') : 'no tasks were running';
  if (e.state === ExecutionState.EXECUTION_STATE_CANCELLED) return `cancelled execution ${e.id} (${tasks})`;
  if (isTerminalExecution(e.state)) return `execution ${e.id} had already finished (${executionStateName(e.state)}); nothing to cancel`;
  return `cancelling execution ${e.id} (${tasks} stopped so far; grid-cli status ${e.id} shows the rest)`;
}
