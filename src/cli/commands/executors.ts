// grid-cli executors list / describe / remove: the executor registry.

import { Argument, type Command } from 'commander';
import { paintFor } from '../colour.js';
import { completesWith } from '../completion/tree.js';
import { executorJson as toJson, executorStateName as stateName } from '../../api/json.js';
import type { Act } from '../main.js';
import { duration, json, table, time } from '../output.js';
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
        '  $ grid-cli executors list --output json',
        '  $ grid-cli executors list --watch',
      ].join('\n'),
    )
    .action(
      act(async (ctx, o: { watch?: boolean }) => {
        const paint = paintFor(ctx);
        const look = async (): Promise<ListView> => {
          const { executors: list } = await ctx.client().ctl.listExecutors();
          const rows = list.map((e) => [e.name, e.id, e.groups.join(',') || '-', e.runners.join(','), paint(stateName(e.state)), ago(e.lastSeenAtMs), e.runningTasks]);
          return {
            text: list.length ? table(['NAME', 'ID', 'GROUPS', 'RUNNERS', 'STATE', 'LAST SEEN', 'RUNNING'], rows) : 'no executors registered yet: executor register adds one',
            json: list.map(toJson),
            key: JSON.stringify(rows.map((r) => r.filter((_, i) => i !== LAST_SEEN_COLUMN))),
          };
        };
        if (o.watch) return watchList(ctx, 'grid-cli executors list', look);
        const view = await look();
        ctx.io.out(ctx.output === 'json' ? json(view.json) : view.text);
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
        if (ctx.output === 'json') return ctx.io.out(json(toJson(e)));
        const labels = Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(', ');
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
        ctx.io.out(rows.map(([k, v]) => `${(k + ':').padEnd(15)} ${v}`).join('\n'));
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
        if (ctx.output === 'json') return ctx.io.out(json(executor ? toJson(executor) : {}));
        ctx.io.out(`removed executor ${executor?.name} (${executor?.id})`);
      }),
    );
}
