// grid-cli executors list / describe / remove: the executor registry.

import { Argument, type Command } from 'commander';
import { paintFor, plain, type Paint } from '../colour.js';
import { completesWith } from '../completion/tree.js';
import { executorJson as toJson, executorStateName as stateName } from '../../api/json.js';
import type { Executor } from '../../gen/grid/v1/types.js';
import type { Act } from '../main.js';
import { duration, table, time } from '../output.js';
import { print, render, type Shown } from '../render.js';
import { watchList, WATCH_INTERVAL_MS, type ListView } from '../watch.js';

/** The column of `executors list` that changes by itself: left out when --watch compares lists. */
const LAST_SEEN_COLUMN = 5;

function ago(ms: number): string {
  return ms ? `${duration(Math.max(0, Date.now() - ms))} ago` : 'never';
}

export function registerExecutorCommands(program: Command, act: Act): void {
  const executors = program
    .command('executors')
    .description('the executors registered with the controller')
    .addHelpText('after', '\nExamples:\n  $ grid-cli executors list\n  $ grid-cli executors describe web-1');

  executors
    .command('list')
    .description('list executors: name, id, groups, runners, state, last seen, running tasks')
    .option('--watch', `keep the list current until Ctrl-C (asked again every ${WATCH_INTERVAL_MS / 1000} s)`)
    .addHelpText(
      'after',
      [
        '',
        `--watch: on a terminal the table is redrawn in place; otherwise a new table is printed when an`,
        `executor comes, goes or changes (state, running tasks: not just its last-seen time), and with`,
        `--output json one JSON array a line per change. The controller has no stream of registry`,
        `changes over gRPC, so the list is asked for every ${WATCH_INTERVAL_MS / 1000} s. Ctrl-C (or SIGTERM) ends it with exit 0.`,
        '',
        'Examples:',
        '  $ grid-cli executors list',
        '  $ grid-cli executors list -o wide',
        '  $ grid-cli executors list --output json',
        '  $ grid-cli executors list --watch',
      ].join('\n'),
    )
    .action(
      act(async (ctx, o: { watch?: boolean }) => {
        const paint = paintFor(ctx);
        const look = async (): Promise<ListView> => {
          const { executors: list } = await ctx.client().ctl.listExecutors();
          return {
            text: render(ctx.output, executorsShown(list, paint), 'executors list') ?? '',
            json: list.map(toJson),
            key: JSON.stringify(list.map((e) => row(e)).map((r) => r.filter((_, i) => i !== LAST_SEEN_COLUMN))),
          };
        };
        if (o.watch) return watchList(ctx, 'grid-cli executors list', look);
        const view = await look();
        if (view.text) ctx.io.out(view.text);
      }),
    );

  executors
    .command('describe')
    .description('show one executor')
    .addArgument(completesWith('executors', new Argument('<id-or-name>', 'executor id or name')))
    .addHelpText('after', '\nExample:\n  $ grid-cli executors describe web-1')
    .action(
      act(async (ctx, idOrName: string) => {
        const e = await ctx.client().ctl.describeExecutor(idOrName);
        print(ctx, { data: toJson(e), names: [e.name], text: () => describeText(e) }, 'executors describe');
      }),
    );

  executors
    .command('remove')
    .description('remove an executor from the registry (admin); its next heartbeat is refused')
    .addArgument(completesWith('executors', new Argument('<id-or-name>', 'executor id or name')))
    .addHelpText('after', '\nExample:\n  $ grid-cli executors remove web-1')
    .action(
      act(async (ctx, idOrName: string) => {
        const { executor } = await ctx.client().ctl.removeExecutor(idOrName);
        const text = () => `removed executor ${executor?.name} (${executor?.id})`;
        print(ctx, { data: executor ? toJson(executor) : {}, names: executor ? [executor.name] : [], text }, 'executors remove');
      }),
    );
}

const HEADERS = ['NAME', 'ID', 'GROUPS', 'RUNNERS', 'STATE', 'LAST SEEN', 'RUNNING'];

/** One row of `executors list`; `paint` colours the STATE cell. */
function row(e: Executor, paint: Paint = plain): Array<string | number> {
  return [e.name, e.id, e.groups.join(',') || '-', e.runners.join(','), paint(stateName(e.state)), ago(e.lastSeenAtMs), e.runningTasks];
}

/** `grid-cli executors list` in every format; wide adds concurrency, load, labels and version. */
export function executorsShown(list: Executor[], paint: Paint = plain): Shown {
  const empty = 'no executors registered yet: executor register adds one';
  return {
    data: list.map(toJson),
    names: list.map((e) => e.name),
    text: () => (list.length ? table(HEADERS, list.map((e) => row(e, paint))) : empty),
    wide: () =>
      list.length
        ? table(
            [...HEADERS, 'CONCURRENCY', 'LOAD', 'LABELS', 'VERSION'],
            list.map((e) => [...row(e, paint), e.concurrency, e.load.toFixed(2), labelsOf(e, ','), e.version]),
          )
        : empty,
  };
}

function describeText(e: Executor): string {
  const labels = labelsOf(e, ', ');
  const rows: Array<[string, string]> = [
    ['Name', e.name],
    ['ID', e.id],
    ['State', stateName(e.state)],
    ['Groups', e.groups.join(', ') || '-'],
    ['Labels', labels || '-'],
    ['Runners', e.runners.join(', ')],
    ['Concurrency', String(e.concurrency)],
    ['Running tasks', String(e.runningTasks)],
    ['Load', e.load.toFixed(2)],
    ['Version', e.version || '-'],
    ['Ping interval', `${e.pingIntervalSeconds}s`],
    ['Registered', time(e.registeredAtMs)],
    ['Last seen', `${time(e.lastSeenAtMs)} (${ago(e.lastSeenAtMs)})`],
  ];
  return rows.map(([k, v]) => `${(k + ':').padEnd(15)} ${v}`).join('\n');
}

function labelsOf(e: Executor, sep: string): string {
  return Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(sep);
}
