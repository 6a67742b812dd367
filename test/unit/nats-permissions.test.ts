// What an executor's NATS user may do: exactly its own consumers and subjects, nothing else.

import { describe, expect, it } from 'vitest';
import { executorInboxPrefix, executorPermissions } from '../../src/bus/permissions.js';

const ID = '01M8T47PQ7PYG52E0YXBR69G3B';

describe('executorPermissions', () => {
  const p = executorPermissions({ id: ID, consumers: [`node-${ID}`, 'pool-all-host', 'pool-web-host'], groups: ['all', 'web'] });

  it('publishes events and logs under its own id, pulls and acks its own consumers', () => {
    expect(p.pub?.allow).toEqual([
      `grid.evt.*.${ID}`,
      `grid.log.*.${ID}`,
      ...[`node-${ID}`, 'pool-all-host', 'pool-web-host'].flatMap((c) => [
        `$JS.API.CONSUMER.MSG.NEXT.GRID_JOBS.${c}`,
        `$JS.API.CONSUMER.INFO.GRID_JOBS.${c}`,
        `$JS.ACK.GRID_JOBS.${c}.>`,
      ]),
    ]);
  });

  it('hears only its own replies and cancellations, the fan-out pointers of its own groups and the nudges of its own pools', () => {
    expect(p.sub?.allow).toEqual([`${executorInboxPrefix(ID)}.>`, `grid.cancel.${ID}`, 'grid.fan.all', 'grid.fan.web', 'grid.nudge.pool-all-host', 'grid.nudge.pool-web-host']);
  });

  it('may not publish a fan-out pointer or a pool nudge (only hear them)', () => {
    expect((p.pub?.allow ?? []).filter((s) => s.startsWith('grid.fan') || s.startsWith('grid.nudge'))).toEqual([]);
  });

  it('allows no administration, no job subjects and no wildcard over other executors', () => {
    const all = [...(p.pub?.allow ?? []), ...(p.sub?.allow ?? [])];
    for (const s of all) {
      expect(s).not.toMatch(/^\$JS\.API\.(STREAM|ACCOUNT|META|SERVER)|CONSUMER\.(CREATE|DURABLE|DELETE)|^\$KV\.|^\$O\.|^grid\.job\.|^>$/);
      // Every grid.* subject names this executor, but its groups' fan-out pointers and its pools' nudges.
      if (s.startsWith('grid.') && !s.startsWith('grid.fan.') && !s.startsWith('grid.nudge.pool-')) expect(s.endsWith(ID)).toBe(true);
    }
  });
});
