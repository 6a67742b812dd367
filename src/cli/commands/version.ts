// grid-cli --version: its own version and API, and the controller's when it answers within a
// short deadline (WhoAmI carries them, so the same token that runs commands can ask).

import { versionLine } from '../../version.js';
import { buildContext, type CliIO, type GlobalOptions } from '../context.js';

/** How long --version waits for the controller before saying it did not answer. */
const VERSION_DEADLINE_MS = 3_000;

export async function printVersions(g: GlobalOptions, io: CliIO): Promise<void> {
  io.out(versionLine('grid-cli'));
  let ctx;
  try {
    ctx = await buildContext({ ...g, requestTimeout: g.requestTimeout ?? `${VERSION_DEADLINE_MS / 1000}s` }, io);
  } catch (err) {
    io.out(`controller: not asked (${(err as Error).message})`);
    return;
  }
  try {
    const me = await ctx.client().ctl.whoAmI();
    const v = me.controllerVersion ? `${me.controllerVersion} (API ${me.apiVersion})` : 'older than 0.1.0 (it does not report its version)';
    io.out(`controller ${v} at ${ctx.config.controller}`);
  } catch (err) {
    io.out(`controller: ${(err as Error).message}`);
  } finally {
    ctx.close();
  }
}
