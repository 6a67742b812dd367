// The bench's count of registrations that overran their time, read from the controller's log as
// the controller's own logger writes it.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { overrunSteps } from '../bench/lib.js';
import { createLogger } from '../../src/util/log.js';

const dir = mkdtempSync(join(tmpdir(), 'grid-overrun-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('overrunSteps', () => {
  it('counts the warnings by the step they name, most first, and says nothing when there are none', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', name: 'controller', write: (s) => void lines.push(s) }).named('executors');
    const overran = (step: string) => log.warn('registration overran its time and gave up its turn', { name: 'hb1-7', step });
    overran('etcd create');
    overran('certificate');
    overran('etcd create');
    log.warn('registration refused: wrong registration token', { name: 'x' });
    const file = join(dir, 'controller.log');
    writeFileSync(file, lines.join('\n') + '\n');
    expect(overrunSteps(file)).toBe('2 at etcd create, 1 at certificate');

    writeFileSync(file, lines.slice(3).join('\n'));
    expect(overrunSteps(file)).toBe('');
    expect(overrunSteps(join(dir, 'absent.log'))).toBe('');
  });
});
