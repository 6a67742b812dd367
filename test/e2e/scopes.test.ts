// Token group scopes over the real grid-cli and controller: a token scoped to group web executes
// only on targets inside web, and sees, cancels and reads the logs of only executions inside it.
// Every refusal is one line naming the scope; the same call just inside the scope works.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, expectOneLineError, startFleet, type Fleet } from '../harness/pipeline-fleet.js';
import { runCli, TOKENS } from '../harness/processes.js';

const WEB_TOKEN = 'e2e-web-scoped-token-44444444';

let fleet: Fleet;
let job: string;

beforeAll(async () => {
  fleet = await startFleet({
    controllerConfig: {
      tokens: [
        ...Object.entries(TOKENS).map(([role, token]) => ({ name: role, token, role })),
        { name: 'web-ops', token: WEB_TOKEN, role: 'operator', groups: ['web'] },
      ],
    },
  });
  job = await fleet.createJob({ name: 'scoped', shell: 'echo ran on $GRID_EXECUTOR; sleep 1', timeout_seconds: 30 });
});

afterAll(async () => {
  await fleet?.stop();
});

const asWeb = (args: string[]) => runCli(args, { address: fleet.controller.address, token: WEB_TOKEN });

describe('a token scoped to group web', () => {
  it.each(['all', 'any', 'group:db', 'node:db-1', 'group:web,node:db-1', 'any:db'])('may not execute on %s', async (target) => {
    const line = expectOneLineError(await asWeb(['execute', job, '--target', target]), 77);
    expect(line).toMatch(new RegExp(`web-ops's token is scoped to groups web: target "${target.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" is outside them \\(.+\\)`));
  });

  it.each(['group:web', 'any:web', 'node:web-1'])('executes on %s', async (target) => {
    const r = await asWeb(['execute', job, '--target', target, '--output', 'json']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('sees, reads the logs of and cancels only executions inside web; lists only those', async () => {
    const inside = await fleet.execute(job, ['--target', 'group:web']);
    const outside = await fleet.execute(job, ['--target', 'group:db']);
    for (const cmd of [['status', outside], ['getlogs', outside], ['cancel', outside]]) {
      const line = expectOneLineError(await asWeb(cmd), 77);
      expect(line).toMatch(new RegExp(`web-ops's token is scoped to groups web: it may not (see|read the logs of|cancel) execution ${outside}, whose target "group:db" is outside them`));
    }
    expect(expectOk(await asWeb(['status', inside]))).toContain(inside);
    await fleet.waitTerminal(inside);
    expect(expectOk(await asWeb(['getlogs', inside]))).toMatch(/ran on web-/);
    const listed = JSON.parse(expectOk(await asWeb(['executions', 'list', '--limit', '100', '--output', 'json']))) as Array<{ id: string }> | { executions: Array<{ id: string }> };
    const ids = (Array.isArray(listed) ? listed : listed.executions).map((x) => x.id);
    expect(ids).toContain(inside);
    expect(ids).not.toContain(outside);
    // The unscoped operator sees both, and may cancel the one outside web.
    expect((await fleet.status(outside)).id).toBe(outside);
    // Long enough to be still running when the cancels arrive, however slow the machine.
    const long = await fleet.createJob({ name: 'scoped-long', shell: 'sleep 60', timeout_seconds: 90 });
    const running = await fleet.execute(long, ['--target', 'group:db']);
    expect(expectOneLineError(await asWeb(['cancel', running]), 77)).toMatch(/outside them/);
    expect((await fleet.cli(['cancel', running])).code).toBe(0);
  });
});
