// Unit tests for the restart policy of the embedded servers' supervisor, over stand-in servers
// (an exit promise the test resolves); the real processes are in test/integration/embedded.test.ts.

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Supervisor, type SupervisedServer, type SupervisionEvent } from '../../src/embedded/supervisor.js';
import type { ChildExit } from '../../src/embedded/child.js';

interface Fake extends SupervisedServer {
  die(): void;
  stopped: boolean;
  killed: boolean;
}

let pids = 100;
/** `stubborn`: stop() asks, but the server stays up until it is killed. */
function fake(stubborn = false): Fake {
  let exit!: (e: ChildExit) => void;
  const exited = new Promise<ChildExit>((r) => (exit = r));
  const f: Fake = {
    pid: pids++,
    exited,
    stopped: false,
    killed: false,
    die: () => exit({ code: null, signal: 'SIGKILL' }),
    stop: async () => {
      f.stopped = true;
      if (!stubborn) exit({ code: 0, signal: null });
      await exited;
    },
    kill: async () => {
      f.killed = true;
      exit({ code: null, signal: 'SIGKILL' });
    },
  };
  return f;
}

const fast = { initialDelayMs: 10, maxDelayMs: 40, stableAfterMs: 300, flappingRestarts: 3, flappingWindowMs: 60_000 };

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !ok(); i++) await sleep(5);
  expect(ok()).toBe(true);
}

describe('Supervisor', () => {
  it('doubles the backoff up to the maximum, says when it keeps dying, and starts over after a stable run', async () => {
    const events: SupervisionEvent[] = [];
    const s = new Supervisor(fake(), { name: 'nats', start: async () => fake(), onEvent: (e) => events.push(e), policy: fast });
    const exits = () => events.filter((e) => e.type === 'exited') as Array<Extract<SupervisionEvent, { type: 'exited' }>>;
    for (let n = 1; n <= 5; n++) {
      const current = s.server as Fake;
      current.die();
      await until(() => events.filter((e) => e.type === 'restarted').length === n);
      expect(s.server.pid).not.toBe(current.pid);
    }
    expect(exits().map((e) => [e.restartInMs, e.attempt, e.flapping])).toEqual([
      [10, 1, false],
      [20, 2, false],
      [40, 3, false],
      [40, 4, true],
      [40, 5, true],
    ]);
    await sleep(fast.stableAfterMs + 50);
    (s.server as Fake).die();
    await until(() => exits().length === 6);
    expect(exits()[5]).toMatchObject({ restartInMs: 10, attempt: 1 });
    await s.stop();
  });

  it('keeps trying when a restart fails, reporting each failure', async () => {
    const events: SupervisionEvent[] = [];
    let failures = 2;
    const s = new Supervisor(fake(), {
      name: 'etcd',
      start: async () => {
        if (failures-- > 0) throw new Error('address already in use');
        return fake();
      },
      onEvent: (e) => events.push(e),
      policy: fast,
    });
    (s.server as Fake).die();
    await until(() => events.some((e) => e.type === 'restarted'));
    expect(events.map((e) => `${e.type} ${e.attempt}${'restartInMs' in e ? ` ${e.restartInMs}` : ''}`)).toEqual([
      'exited 1 10',
      'restart-failed 1 20',
      'restart-failed 2 40',
      'restarted 3',
    ]);
    await s.stop();
  });

  it('restarts nothing once halted, and stop() stops the server that runs', async () => {
    const events: SupervisionEvent[] = [];
    const first = fake();
    const s = new Supervisor(first, { name: 'nats', start: async () => fake(), onEvent: (e) => events.push(e), policy: { ...fast, initialDelayMs: 50 } });
    first.die();
    await until(() => events.length === 1);
    await s.halt(); // the pending restart is cancelled
    await sleep(100);
    expect(s.server).toBe(first);
    expect(events.map((e) => e.type)).toEqual(['exited']);

    const second = new Supervisor(fake(), { name: 'nats', start: async () => fake(), policy: fast });
    const running = second.server as Fake;
    await second.stop();
    expect(running.stopped).toBe(true);
    expect(second.stop()).toBe(second.stop()); // idempotent
  });

  it('kill() kills the server a restart under way brings up, and restarts nothing after', async () => {
    const events: SupervisionEvent[] = [];
    const first = fake();
    const started: Fake[] = [];
    const s = new Supervisor(first, {
      name: 'etcd',
      start: async () => {
        await sleep(50);
        const f = fake();
        started.push(f);
        return f;
      },
      onEvent: (e) => events.push(e),
      policy: fast,
    });
    first.die();
    await sleep(fast.initialDelayMs + 20); // the restart has begun
    await s.kill();
    expect(started).toHaveLength(1);
    expect(s.server).toBe(started[0]);
    expect(started[0]!.killed).toBe(true);
    await sleep(100);
    expect(started).toHaveLength(1);
  });

  it('kill() cuts a stop() under way short', async () => {
    const stubborn = fake(true);
    const s = new Supervisor(stubborn, { name: 'nats', start: async () => fake(), policy: fast });
    let stopped = false;
    const stopping = s.stop().then(() => (stopped = true));
    await sleep(20);
    expect(stopped).toBe(false);
    await s.kill();
    await stopping;
    expect(stubborn.killed).toBe(true);
  });
});
