// The logger over pino: the text format exactly as the tests and operators grep it, the JSON
// format (one object a line with level, time, name and msg), secret-named fields censored in
// both, and fields named like the line's own keys kept apart from them.

import { describe, expect, it } from 'vitest';
import { createLogger, REDACTED, type LogFormat } from '../../src/util/log.js';

function capture(format: LogFormat, level: 'debug' | 'info' = 'info') {
  const lines: string[] = [];
  const log = createLogger({ format, level, name: 'controller', write: (l) => lines.push(l) });
  return { log, lines };
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('text format', () => {
  it('is `<time> <LEVEL> <name>: <message> key=value …`, as before pino', () => {
    const { log, lines } = capture('text');
    log.named('etcd').warn('watch read afresh and resumed: etcd held a change it did not deliver', { watch: 'executors/*', revision: 332 });
    log.info('executor registered', { id: '01M9', name: 'vm-local', groups: 'local', empty: '', spaced: 'a b', list: ['a', 'b'], gone: undefined, err: new Error('boom') });
    expect(lines).toHaveLength(2);
    const [time, rest] = [lines[0]!.slice(0, 24), lines[0]!.slice(24)];
    expect(time).toMatch(ISO);
    expect(rest).toBe(' WARN  controller.etcd: watch read afresh and resumed: etcd held a change it did not deliver watch=executors/* revision=332');
    expect(lines[1]!.slice(24)).toBe(' INFO  controller: executor registered id=01M9 name=vm-local groups=local empty="" spaced="a b" list="[\\"a\\",\\"b\\"]" err=boom');
  });

  it('merges with() fields under the call\'s, keeps the order, and filters by level', () => {
    const { log, lines } = capture('text');
    const w = log.named('worker').with({ execution: 'E1', task: 'T1' });
    w.debug('not shown');
    w.info('task started', { attempt: 2, execution: 'E2' });
    expect(lines.map((l) => l.slice(24))).toEqual([' INFO  controller.worker: task started execution=E2 task=T1 attempt=2']);
  });

  it('censors secret-named fields, nested ones too', () => {
    const { log, lines } = capture('text');
    log.with({ registration_token: 'reg-0000' }).warn('refused', { token: 'tok-1111', nested: { password: 'pw-2222', ok: 1 } });
    expect(lines[0]!.slice(24)).toBe(` WARN  controller: refused registration_token=${REDACTED} token=${REDACTED} nested="{\\"password\\":\\"${REDACTED}\\",\\"ok\\":1}"`);
    expect(lines.join('\n')).not.toMatch(/0000|1111|2222/);
  });
});

describe('json format', () => {
  it('writes one object a line with level, time, name and msg, and the fields beside them', () => {
    const { log, lines } = capture('json', 'debug');
    log.named('grpc').debug('call', { method: '/grid.v1.ControllerService/Execute', code: 'OK', duration_ms: 3.2, caller: 'ops' });
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({ level: 'debug', name: 'controller.grpc', msg: 'call', method: '/grid.v1.ControllerService/Execute', code: 'OK', duration_ms: 3.2, caller: 'ops' });
    expect(o.time).toMatch(ISO);
    expect(typeof o.pid).toBe('number');
    expect(typeof o.hostname).toBe('string');
  });

  it('censors a field named token (and the other secret names), nested ones too', () => {
    const { log, lines } = capture('json');
    log.with({ executor_secret: 'sec-0000' }).info('registered', { token: 'tok-1111', authorization: 'Bearer x-2222', req: { seed: 'SU-3333', inner: { jwt: 'ey-4444' } } });
    const o = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(o).toMatchObject({ executor_secret: REDACTED, token: REDACTED, authorization: REDACTED, req: { seed: REDACTED, inner: { jwt: REDACTED } } });
    expect(lines[0]).not.toMatch(/0000|1111|2222|3333|4444/);
  });

  it('writes a field named like a key of the line as fields.<key>, never shadowing it', () => {
    const { log, lines } = capture('json');
    log.named('executors').info('executor registered', { name: 'vm-local', msg: 'm', level: 3, time: 't', pid: 7 });
    const raw = lines[0]!;
    for (const k of ['name', 'msg', 'level', 'time', 'pid']) expect(raw.split(`"${k}":`)).toHaveLength(2); // each key once
    expect(JSON.parse(raw)).toMatchObject({ name: 'controller.executors', msg: 'executor registered', level: 'info', 'fields.name': 'vm-local', 'fields.msg': 'm', 'fields.level': 3, 'fields.time': 't', 'fields.pid': 7 });
  });
});
