// grid-cli health: the controller's backends as it sees them (etcd's database, the streams,
// retention). Exit 1 when etcd or NATS did not answer it.

import type { Command } from 'commander';
import type { GetHealthResponse } from '../../gen/grid/v1/controller.js';
import { ExitWith, type Act } from '../main.js';
import { formatBytes as bytes } from '../../util/bytes.js';
import { table } from '../output.js';
import { print } from '../render.js';

/** The report as lines: etcd, NATS with one row per stream, retention. */
export function healthText(h: GetHealthResponse): string {
  const out: string[] = [];
  const e = h.etcd;
  if (e) {
    const where = e.endpoints.join(', ');
    out.push(
      e.error
        ? `etcd       ${where}: ${e.error}`
        : `etcd       ${where}  v${e.version}  database ${bytes(Number(e.dbSizeBytes))} (${bytes(Number(e.dbSizeInUseBytes))} in use)`,
    );
  }
  const n = h.nats;
  if (n) {
    out.push(n.error ? `nats       ${n.servers.join(', ')}: ${n.error}` : `nats       ${n.servers.join(', ')}`);
    if (n.streams.length) {
      const rows = n.streams.map((s) => [s.name, Number(s.messages), bytes(Number(s.bytes)), `R${s.replicas}`, s.leader || '-', s.followers.join(', ') || '-']);
      out.push(table(['STREAM', 'MESSAGES', 'SIZE', 'REPLICAS', 'LEADER', 'FOLLOWERS'], rows).replace(/^/gm, '  '));
    }
  }
  const r = h.retention;
  if (r) {
    const pruned = Number(r.prunedBeforeMs) ? `; ${Number(r.deletedTotal)} pruned, the newest created ${new Date(Number(r.prunedBeforeMs)).toISOString()}` : '; none pruned yet';
    out.push(`retention  ${r.policy}: ${Number(r.finishedKept)} finished kept${pruned}`);
  }
  return out.join('\n');
}

export function registerHealthCommand(program: Command, act: Act): void {
  program
    .command('health')
    .description("the controller's backends: etcd's database size, the streams and their replicas, retention")
    .addHelpText('after', '\nExit 1 when etcd or NATS does not answer the controller.\n\nExamples:\n  $ grid-cli health\n  $ grid-cli health --output json')
    .action(
      act(async (ctx) => {
        const h = await ctx.client().ctl.getHealth();
        print(ctx, { data: h, text: () => healthText(h) }, 'health');
        if (h.etcd?.error || h.nats?.error) throw new ExitWith(1);
      }),
    );
}
