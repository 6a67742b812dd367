// grid-cli executors list / describe / remove: the executor registry.

import type { Command } from 'commander';
import { executorJson as toJson, executorStateName as stateName } from '../../api/json.js';
import type { Executor } from '../../gen/grid/v1/types.js';
import type { Act } from '../main.js';
import { duration, table, time } from '../output.js';
import { print } from '../render.js';

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
    .addHelpText('after', '\nExamples:\n  $ grid-cli executors list\n  $ grid-cli executors list -o wide\n  $ grid-cli executors list --output json')
    .action(
      act(async (ctx) => {
        const { executors: list } = await ctx.client().ctl.listExecutors();
        const empty = 'no executors registered yet: executor register adds one';
        const headers = ['NAME', 'ID', 'GROUPS', 'RUNNERS', 'STATE', 'LAST SEEN', 'RUNNING'];
        const row = (e: Executor) => [e.name, e.id, e.groups.join(',') || '-', e.runners.join(','), stateName(e.state), ago(e.lastSeenAtMs), e.runningTasks];
        print(
          ctx,
          {
            data: list.map(toJson),
            names: list.map((e) => e.name),
            text: () => (list.length ? table(headers, list.map(row)) : empty),
            wide: () =>
              list.length
                ? table(
                    [...headers, 'CONCURRENCY', 'LOAD', 'LABELS', 'VERSION'],
                    list.map((e) => [...row(e), e.concurrency, e.load.toFixed(2), labelsOf(e, ','), e.version]),
                  )
                : empty,
          },
          'executors list',
        );
      }),
    );

  executors
    .command('describe')
    .description('show one executor')
    .argument('<id-or-name>', 'executor id or name')
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
    .argument('<id-or-name>', 'executor id or name')
    .addHelpText('after', '\nExample:\n  $ grid-cli executors remove web-1')
    .action(
      act(async (ctx, idOrName: string) => {
        const { executor } = await ctx.client().ctl.removeExecutor(idOrName);
        const text = () => `removed executor ${executor?.name} (${executor?.id})`;
        print(ctx, { data: executor ? toJson(executor) : {}, names: executor ? [executor.name] : [], text }, 'executors remove');
      }),
    );
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
