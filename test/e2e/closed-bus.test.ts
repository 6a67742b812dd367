// The closed bus, end to end: NATS admits only GRID-minted users, an executor's own user is
// confined by the server to its own consumers and subjects, a job message is only a pointer (a
// forged one runs nothing but the recorded task, once), and the recorder believes only the
// executor a task belongs to. Each attack is first shown to work where the protection is absent.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { errors, type NatsConnection } from '@nats-io/nats-core';
import { Objm } from '@nats-io/obj';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../src/bus/connect.js';
import { encode } from '../../src/bus/messages.js';
import { consumers, STREAMS, subjects } from '../../src/bus/subjects.js';
import { startNats } from '../../src/embedded/index.js';
import { NatsAuthority, newUserKey } from '../../src/bus/authority.js';
import { GridClient } from '../../src/client/client.js';
import { readExecutorState } from '../harness/executor-process.js';
import { readAll } from '../harness/streams.js';
import { startFleet, type ExecutorName, type Fleet } from '../harness/pipeline-fleet.js';
import { runProgram, startController, startProgram, tempDir } from '../harness/processes.js';
import { uniqueName } from '../harness/servers.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';

let fleet: Fleet;

beforeAll(async () => {
  fleet = await startFleet();
});

afterAll(async () => {
  await fleet?.stop();
});

interface ExecutorCreds {
  id: string;
  jwt: string;
  seed: string;
  inboxPrefix: string;
}

function credsOf(name: ExecutorName): ExecutorCreds {
  const s = readExecutorState(fleet.executors[name].stateFile) as Record<string, string>;
  return { id: s.executor_id!, jwt: s.nats_user_jwt!, seed: s.nats_user_seed!, inboxPrefix: s.nats_inbox_prefix! };
}

/** A connection as one executor, and every error the server sent it (permission violations). */
async function connectAs(c: ExecutorCreds): Promise<{ nc: NatsConnection; errors: string[] }> {
  const nc = await connectBus({ servers: [fleet.servers.natsUrl], name: 'closed-bus-test', user: { jwt: c.jwt, seed: c.seed }, inboxPrefix: c.inboxPrefix });
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') seen.push(s.error.message);
  })();
  return { nc, errors: seen };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(50);
  }
}

/** Runs `attempt` (which may throw: a denied request gets no answer) and waits for the server's violation. */
async function expectDenied(errs: string[], pattern: RegExp, attempt: () => Promise<unknown>): Promise<void> {
  await attempt().catch(() => undefined);
  await until(`a permission violation matching ${pattern}`, () => errs.some((e) => /Permissions Violation/.test(e) && pattern.test(e)));
}

describe('NATS admits only GRID-minted users', () => {
  it('a bare client connects to a NATS without authentication, and is refused by GRID\'s, the embedded default included', async () => {
    // The attack on the unprotected path: an unauthenticated nats-server lets anyone subscribe to the job subjects.
    const open = await startNats({ dataDir: join(tempDir(), 'open-nats') });
    try {
      const bare = await connect({ servers: open.url, reconnect: false });
      bare.subscribe('grid.job.>');
      await bare.flush();
      await bare.close();
    } finally {
      await open.stop();
    }

    // GRID's test servers (as run for every test) refuse it at connect.
    await expect(connect({ servers: fleet.servers.natsUrl, reconnect: false, timeout: 5000 })).rejects.toBeInstanceOf(errors.AuthorizationError);

    // So does the embedded default: `controller start` with nothing configured.
    const dataDir = join(tempDir(), 'grid');
    const controller = await startProgram('controller', ['start', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0'], { ready: /controller ready/ });
    try {
      const ports = JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as { host: string; nats: number };
      // Its NATS serves TLS only; over TLS, a client without credentials is refused at connect.
      const ca = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
      await expect(connect({ servers: `nats://${ports.host}:${ports.nats}`, reconnect: false, timeout: 5000, tls: { ca } })).rejects.toBeInstanceOf(errors.AuthorizationError);
      // The keys are the controller's alone.
      for (const f of ['operator.seed', 'account.seed', 'account-signing.seed']) {
        const mode = statSync(join(dataDir, 'nats-auth', f)).mode & 0o777;
        expect(mode, f).toBe(0o600);
      }
    } finally {
      await controller.stop();
    }
  });
});

describe('removing an executor revokes its NATS user (embedded default)', () => {
  it('its open connection is cut and it cannot connect again; another executor is unaffected', async () => {
    const dataDir = join(tempDir(), 'grid');
    const controller = await startProgram('controller', ['start', '--data-dir', dataDir, '--grpc-address', '127.0.0.1:0'], { ready: /controller ready address=(\S+)/ });
    const address = controller.ready[1]!;
    const dev = JSON.parse(readFileSync(join(dataDir, 'dev-credentials.json'), 'utf8')) as { admin_token: string; registration_token: string };
    const ports = JSON.parse(readFileSync(join(dataDir, 'embedded.json'), 'utf8')) as { host: string; nats: number };
    const natsUrl = `nats://${ports.host}:${ports.nats}`;
    const tls = { ca_file: join(dataDir, 'tls', 'ca.crt'), cert_file: '', key_file: '' };
    const admin = new GridClient({ address, token: dev.admin_token, timeoutMs: 10_000, tls: testClientTls(undefined, join(dataDir, 'tls', 'ca.crt')) });
    const register = async (name: string, key = newUserKey()) => {
      const { res, client } = await registerDirect(address, { name, registrationToken: dev.registration_token, natsKey: key, caFile: join(dataDir, 'tls', 'ca.crt') });
      client.close();
      return { jwt: res.nats!.userJwt, seed: key.seed, inboxPrefix: res.nats!.inboxPrefix, key };
    };
    try {
      const doomed = await register('doomed');
      const kept = await register('kept');
      const a = await connectBus({ servers: [natsUrl], tls, name: 'doomed', user: doomed, inboxPrefix: doomed.inboxPrefix });
      const b = await connectBus({ servers: [natsUrl], tls, name: 'kept', user: kept, inboxPrefix: kept.inboxPrefix });
      const seen: string[] = [];
      void (async () => {
        for await (const st of a.status()) if (st.type === 'error') seen.push(st.error.message);
      })();
      const keptEvents: string[] = [];
      void (async () => {
        for await (const st of b.status()) keptEvents.push(st.type);
      })();
      await admin.ctl.removeExecutor('doomed');
      await until('the revocation to reach the connection', () => seen.some((m) => /revoked/i.test(m)));
      await a.close().catch(() => undefined);
      await expect(connectBus({ servers: [natsUrl], tls, name: 'doomed-again', user: doomed, connectTimeoutMs: 5000 })).rejects.toThrow(
        /NATS at .* refused doomed-again: .*Authorization Violation/,
      );
      // The other user was never disconnected: the revocation is an account update, not a reload.
      await b.flush();
      expect(b.isClosed()).toBe(false);
      expect(keptEvents.filter((t) => t === 'disconnect' || t === 'error')).toEqual([]);
      await b.close();
      expect(controller.logs()).toMatch(/NATS user revoked executor=doomed/);

      // Registered again with the same key (a registration token proves it may): a new JWT that
      // works, while the old one stays refused; removed again, the new one is refused too.
      const again = await register('doomed', doomed.key);
      // Seen under the full suite's load: the first connect refused, or one attempt taking the
      // whole of a 5 s window; the server takes the new JWT within a moment, so several tries.
      let c: NatsConnection | undefined;
      await until('the new JWT to be accepted', async () => {
        c = await connectBus({ servers: [natsUrl], tls, name: 'doomed-new', user: again, inboxPrefix: again.inboxPrefix, connectTimeoutMs: 5000 }).catch(() => undefined);
        return c !== undefined;
      }, 20_000);
      await c!.close();
      await expect(connectBus({ servers: [natsUrl], tls, name: 'doomed-old', user: doomed, connectTimeoutMs: 5000 })).rejects.toThrow(/Authorization Violation/);
      await admin.ctl.removeExecutor('doomed');
      await until('the second revocation', () => controller.logs().split('NATS user revoked executor=doomed').length === 3);
      await expect(connectBus({ servers: [natsUrl], tls, name: 'doomed-new-again', user: again, connectTimeoutMs: 5000 })).rejects.toThrow(/Authorization Violation/);
    } finally {
      admin.close();
      await controller.stop();
    }
  });
});

describe('controller nats-config (an external NATS)', () => {
  it('prints a block a nats-server starts from; a controller with that auth_dir works on it; without auth_dir it is refused by name', async () => {
    const dir = tempDir();
    const authDir = join(dir, 'nats-auth');
    const printed = await runProgram('controller', ['nats-config', '--auth-dir', authDir, '--resolver-dir', join(dir, 'nats', 'jwt')]);
    expect(printed.code, printed.stderr).toBe(0);
    expect(printed.stdout).toMatch(/^operator: eyJ/m);
    expect(printed.stdout).toMatch(/^resolver: \{ type: full, /m);
    // Run again, it prints the same operator (the keys are kept).
    const again = await runProgram('controller', ['nats-config', '--auth-dir', authDir, '--resolver-dir', join(dir, 'nats', 'jwt')]);
    expect(again.stdout.match(/^operator: .*$/m)?.[0]).toBe(printed.stdout.match(/^operator: .*$/m)?.[0]);

    const authority = await NatsAuthority.open(authDir, { create: false });
    const probe = await authority.mintOwnUser('probe');
    const nats = await startNats({ dataDir: join(dir, 'nats'), auth: { config: printed.stdout, user: { jwt: probe.jwt, seed: probe.seed } } });
    try {
      const etcdEndpoint = fleet.servers.etcdEndpoint;
      const ok = await startController({ natsUrl: nats.url, etcdEndpoint, config: { nats: { servers: [nats.url], auth_dir: authDir } } });
      await ok.stop();
      const refused = await runProgram('controller', ['start', '--etcd-endpoints', etcdEndpoint, '--nats-servers', nats.url, '--grpc-address', '127.0.0.1:0']);
      expect(refused.code).toBe(2);
      expect(refused.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(/^controller: config nats\.auth_dir: missing; GRID mints every NATS user itself: run "controller nats-config --auth-dir DIR"/),
      ]);
    } finally {
      await nats.stop();
    }
  });
});

describe("an executor's own NATS user", () => {
  it('does what an executor needs, and the server denies everything else', async () => {
    const web1 = credsOf('web-1');
    const web2 = credsOf('web-2');
    expect(web1.jwt).toMatch(/^eyJ/);
    const { nc, errors: errs } = await connectAs(web1);
    try {
      const js = jetstream(nc);
      // Allowed: its own consumer, and events under its own id (for no execution: the recorder drops it).
      expect((await (await js.consumers.get(STREAMS.jobs, consumers.node(web1.id))).info()).name).toBe(consumers.node(web1.id));
      await js.publish(subjects.event(uniqueName('NOEXEC'), web1.id), encode({}));
      expect(errs).toEqual([]);

      // Denied, each with the server's permission violation:
      const sub = nc.subscribe('grid.job.>');
      await expectDenied(errs, /Subscription to "grid\.job\.>"/, async () => {
        for await (const _ of sub) break;
      });
      await expectDenied(errs, new RegExp(`CONSUMER\\.(INFO|MSG\\.NEXT)\\.GRID_JOBS\\.${consumers.node(web2.id)}`), async () => {
        const other = await js.consumers.get(STREAMS.jobs, consumers.node(web2.id));
        await other.next({ expires: 1000 });
      });
      await expectDenied(errs, /Publish to "grid\.job\.pool\.web\.host"/, () => {
        nc.publish(subjects.poolJob('web', 'host'), encode({ execution_id: 'x', task_key: 'pool.web.0' }));
        return nc.flush();
      });
      await expectDenied(errs, new RegExp(`Publish to "grid\\.evt\\.[^.]+\\.${web2.id}"`), () => {
        nc.publish(subjects.event(uniqueName('EXEC'), web2.id), encode({}));
        return nc.flush();
      });
      await expectDenied(errs, /STREAM\.DELETE\.GRID_JOBS/, async () => (await jetstreamManager(nc, { timeout: 2000, checkAPI: false })).streams.delete(STREAMS.jobs));
      // A put into the object store is a chunk and then the file's metadata on these subjects.
      await expectDenied(errs, /Publish to "\$O\.grid-files\.C\./, () => {
        nc.publish('$O.grid-files.C.evil', new TextEncoder().encode('evil'));
        return nc.flush();
      });
      await expectDenied(errs, /Publish to "\$O\.grid-files\.M\./, () => {
        nc.publish('$O.grid-files.M.ZXZpbC5jb25m', encode({ name: 'evil.conf' }));
        return nc.flush();
      });
    } finally {
      await nc.close();
    }
    // The stream is still there, and the files store holds no evil.conf.
    const admin = await fleet.servers.connectNats('closed-bus-admin');
    try {
      expect((await (await jetstreamManager(admin)).streams.info(STREAMS.jobs)).config.name).toBe(STREAMS.jobs);
      expect(await (await new Objm(admin).open('grid-files')).info('evil.conf')).toBeNull();
    } finally {
      await admin.close();
    }
  });
});

describe('job messages are pointers', () => {
  it('a forged job message with a live execution id runs only the stored definition, once; its marker never runs', async () => {
    const ran = join(fleet.dir, uniqueName('ran'));
    const marker = join(fleet.dir, uniqueName('marker'));
    const release = join(fleet.dir, uniqueName('release'));
    writeFileSync(ran, '');
    // A rollout of one task at a time over web-1 and web-2: the second task waits in a later wave,
    // and the first keeps running until the forged messages are in (however slow the machine).
    const job = await fleet.createJob({ name: 'pointer', shell: `echo "$GRID_EXECUTOR $GRID_EXECUTION_ID" >> ${ran}; while [ ! -e ${release} ]; do sleep 0.1; done`, timeout_seconds: 60 });
    const id = await fleet.execute(job, ['--target', 'group:web', '--batch-size', '1']);
    let held: { key: string; executorId: string; executorName: string } | undefined;
    await until('the first wave to run', async () => {
      const s = await fleet.status(id);
      const running = s.tasks.find((t) => t.state === 'RUNNING');
      held = s.tasks.find((t) => t.state === 'PENDING');
      return !!running && !!held;
    });
    const forged = { execution_id: id, task_key: held!.key, definition: { name: job, runner: 'host', shell: `touch ${marker}`, files: [], env_vars: { args: [], secrets: [] } } };

    // With credentials that may publish there (the controller's, standing in for a compromised path):
    const nc = await fleet.servers.connectNats('forger');
    try {
      const js = jetstream(nc);
      const subject = subjects.nodeJob(held!.executorId);
      // 1. Without the controller's Msg-Id: the executor drops it.
      await js.publish(subject, encode(forged));
      // 2. With the task's Msg-Id, before the controller sends it: the executor asks the controller,
      //    which says "not yet", and later runs the task as recorded.
      await js.publish(subject, encode(forged), { msgID: `${id}.${held!.key}` });
      // 3. Once more with the same Msg-Id: the stream keeps one message per task.
      expect((await js.publish(subject, encode(forged), { msgID: `${id}.${held!.key}` })).duplicate).toBe(true);
    } finally {
      await nc.close();
    }
    writeFileSync(release, '');
    const s = await fleet.waitTerminal(id, 60_000);
    expect(s.state).toBe('SUCCEEDED');
    expect(existsSync(marker)).toBe(false);
    const lines = readFileSync(ran, 'utf8').trim().split('\n').sort();
    expect(lines).toEqual(['web-1', 'web-2'].map((n) => `${n} ${id}`));
    const logs = fleet.executors[held!.executorName as ExecutorName].logs();
    expect(logs).toMatch(/dropping a job message that cannot be read.*Msg-Id/);
    expect(logs).toMatch(/a job message carried more than a pointer; ignored/);
  });
});

describe('the recorder believes only the task\'s executor', () => {
  it('a finished event forged for another executor\'s task, or with an unknown outcome, is not recorded; the real result is', async () => {
    const job = await fleet.createJob({ name: 'real-result', shell: 'sleep 2; exit 0', timeout_seconds: 60 });
    const web1 = credsOf('web-1');
    const web2 = credsOf('web-2');
    const forgedFinish = (executionId: string, executorId: string) =>
      encode({ execution_id: executionId, task_key: web2.id, executor_id: executorId, executor_name: 'web-2', attempt: 1, kind: 'finished', at_ms: Date.now(), outcome: 'failed', exit_code: 99, reason: 'forged' });

    // The unprotected path: a user allowed to publish under web-2's id is believed.
    const shown = await fleet.execute(job, ['--target', 'node:web-2']);
    const admin = await fleet.servers.connectNats('forger');
    try {
      await jetstream(admin).publish(subjects.event(shown, web2.id), forgedFinish(shown, web2.id));
    } finally {
      await admin.close();
    }
    const believed = await fleet.waitTerminal(shown);
    expect(believed.tasks[0]).toMatchObject({ state: 'FAILED', exitCode: 99, reason: 'forged' });

    // web-1 may publish only under its own id; its forged event for web-2's task is refused, whether
    // its body says web-1 or claims to be web-2.
    const id = await fleet.execute(job, ['--target', 'node:web-2']);
    const { nc } = await connectAs(web1);
    try {
      await jetstream(nc).publish(subjects.event(id, web1.id), forgedFinish(id, web1.id));
      await jetstream(nc).publish(subjects.event(id, web1.id), forgedFinish(id, web2.id));
      // It may publish log output under its own id, for any execution: GetLogs leaves it out.
      await jetstream(nc).publish(subjects.log(id, web1.id), new TextEncoder().encode('INJECTED by web-1\n'));
    } finally {
      await nc.close();
    }
    // web-2's own user, with an outcome that does not exist: refused, never stored as undefined.
    const own = await connectAs(web2);
    try {
      await jetstream(own.nc).publish(
        subjects.event(id, web2.id),
        encode({ execution_id: id, task_key: web2.id, executor_id: web2.id, executor_name: 'web-2', attempt: 1, kind: 'finished', at_ms: Date.now(), outcome: 'exploded' }),
      );
    } finally {
      await own.nc.close();
    }
    const s = await fleet.waitTerminal(id);
    expect(s.state).toBe('SUCCEEDED');
    expect(s.tasks[0]).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, reason: 'exit code 0' });
    const injected = await fleet.servers.connectNats('reader');
    try {
      const inStream = await readAll(jetstream(injected), STREAMS.logs, subjects.log(id, web1.id));
      expect(inStream.map((m) => m.string())).toEqual(['INJECTED by web-1\n']); // it is in the stream…
    } finally {
      await injected.close();
    }
    const shownLogs = await fleet.cli(['getlogs', id]);
    expect(shownLogs.code).toBe(0);
    expect(shownLogs.stdout + shownLogs.stderr).not.toMatch(/INJECTED/); // …and not in the execution's logs
    const log = fleet.controller.logs();
    expect(log).toMatch(new RegExp(`log output from an executor with no task of this execution left out execution=${id} executor=${web1.id}`));
    expect(log).toMatch(new RegExp(`event refused .*why="sent by an executor that is not the task's".*executor=${web1.id}`));
    expect(log).toMatch(new RegExp(`event refused subject=grid\\.evt\\.${id}\\.${web1.id} why="executor_id \\\\"${web2.id}\\\\" is not the subject's`));
    expect(log).toMatch(/event refused .*outcome \\"exploded\\" is not one of succeeded, failed, timed_out, cancelled/);
  });
});
