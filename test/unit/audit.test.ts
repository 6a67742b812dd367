// The audit log's line format, its secret-freedom (argument values, tokens and executor secrets
// never appear, even where an error message quotes them), the file sink and a failing sink.

import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, FileSink, redact, type AuditSink, type AuditSpec } from '../../src/controller/audit.js';
import { ConfigError, PermissionDeniedError, UnauthenticatedError, ValidationError } from '../../src/errors.js';
import { createLogger } from '../../src/util/log.js';
import { checkArgValue } from '../../src/domain/args.js';

const SECRET = 'marker-s3cr3t-value-9f2c';
const TOKEN = 'bearer-token-value-77aa11';
const AT = Date.parse('2026-01-02T03:04:05.678Z');

class MemorySink implements AuditSink {
  lines: string[] = [];
  fail = false;
  write(line: string): void {
    if (this.fail) throw new Error('ENOSPC: no space left on device');
    this.lines.push(line);
  }
  reopen(): void {}
  close(): void {}
}

interface ExecuteReq {
  job: string;
  args: Record<string, string>;
  target: string;
  dryRun: boolean;
}
interface ExecuteRes {
  executionId: string;
  reused?: boolean;
}
const executeSpec: AuditSpec<ExecuteReq, ExecuteRes> = {
  action: 'execution.create',
  target: (req) => req.job,
  executionId: (_req, res) => res?.executionId,
  on: (req) => req.target,
  dryRun: (req) => req.dryRun,
  reused: (_req, res) => !!res?.reused,
  hide: (req) => Object.values(req.args),
};

let sink: MemorySink;
let warnings: string[];
let audit: AuditLog;
beforeEach(() => {
  sink = new MemorySink();
  warnings = [];
  const log = createLogger({ level: 'info', write: (l) => warnings.push(l) });
  audit = new AuditLog(sink, log, async (id) => (id === '01EXEC' ? 'web-1' : undefined), () => AT);
});

const parsed = () => sink.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

describe('audit lines', () => {
  it('are one JSON object per line with who, what, target, result and the execution id', async () => {
    const req = { job: 'deploy', args: { VERSION: '1.2.3', DB_PASSWORD: SECRET }, target: 'group:web', dryRun: false };
    await audit.record(executeSpec, { via: 'grpc', principal: { name: 'alice', role: 'operator', groups: [] }, req, hide: [TOKEN] }, { ok: true, res: { executionId: '01XYZ' } });
    expect(sink.lines).toHaveLength(1);
    expect(sink.lines[0]!.endsWith('\n')).toBe(true);
    expect(sink.lines[0]!.slice(0, -1)).not.toContain('\n');
    expect(parsed()[0]).toEqual({
      time: '2026-01-02T03:04:05.678Z',
      via: 'grpc',
      who: { kind: 'operator', name: 'alice', role: 'operator' },
      action: 'execution.create',
      target: 'deploy',
      result: 'ok',
      execution_id: '01XYZ',
      on: 'group:web',
    });
    // No argument value at all, secret or not.
    expect(sink.lines[0]).not.toContain(SECRET);
    expect(sink.lines[0]).not.toContain('1.2.3');
  });

  it('mark an execute that an idempotency key answered with its earlier execution', async () => {
    const req = { job: 'deploy', args: {}, target: 'all', dryRun: false };
    await audit.record(executeSpec, { via: 'grpc', principal: { name: 'alice', role: 'operator', groups: [] }, req }, { ok: true, res: { executionId: '01XYZ', reused: true } });
    expect(parsed()[0]).toMatchObject({ action: 'execution.create', result: 'ok', execution_id: '01XYZ', reused: true });
  });

  it('mark dry runs, and record refusals by kind and message with the values blanked out', async () => {
    const given = { COUNT: SECRET };
    const bad = checkArgValue({ name: 'COUNT', type: 'int' } as never, SECRET);
    expect(bad.ok).toBe(false);
    const err = new ValidationError([{ path: 'args.COUNT', message: (bad as { message: string }).message }]);
    // The attack without redaction: the error message itself carries the value.
    expect(err.message).toContain(SECRET);
    await audit.record(executeSpec, { via: 'grpc', principal: { name: 'bob', role: 'operator', groups: [] }, req: { job: 'j', args: given, target: '', dryRun: true }, hide: [TOKEN] }, { ok: false, err });
    const [line] = parsed();
    expect(line).toMatchObject({ action: 'execution.create', target: 'j', result: 'validation', dry_run: true, error: 'args.COUNT: "<redacted>" is not an int; use a whole number such as 3 or -1' });
    expect(line).not.toHaveProperty('execution_id');
    expect(sink.lines.join('')).not.toContain(SECRET);
  });

  it('call a caller whose token was not accepted anonymous, and never write the token', async () => {
    const err = new UnauthenticatedError(`the token ${TOKEN} was not accepted`);
    await audit.record(executeSpec, { via: 'grpc', req: { job: 'j', args: {}, target: 'all', dryRun: false }, hide: [TOKEN] }, { ok: false, err });
    expect(parsed()[0]).toMatchObject({ who: { kind: 'anonymous' }, result: 'unauthenticated', error: 'the token <redacted> was not accepted' });
    expect(sink.lines.join('')).not.toContain(TOKEN);
  });

  it('name executors by id and looked-up name, and registrations by their token\'s name', async () => {
    const dereg: AuditSpec<{ executorId: string; executorSecret: string }, object> = {
      action: 'executor.deregister',
      target: async () => 'web-1',
      who: (req) => ({ kind: 'executor', id: req.executorId }),
      hide: (req) => [req.executorSecret],
    };
    await audit.record(dereg, { via: 'grpc', req: { executorId: '01EXEC', executorSecret: SECRET } }, { ok: true, res: {} });
    await audit.record(dereg, { via: 'grpc', req: { executorId: '01GONE', executorSecret: SECRET } }, { ok: false, err: new UnauthenticatedError('executor 01GONE is not registered') });
    const reg: AuditSpec<{ name: string; token: string }, { id: string }> = {
      action: 'executor.register',
      target: (req) => req.name,
      executorId: (_req, res) => res?.id,
      who: (req) => (req.token === 'good' ? { kind: 'registration', token: 'rack-7' } : { kind: 'anonymous' }),
    };
    await audit.record(reg, { via: 'grpc', req: { name: 'web-9', token: 'good' } }, { ok: true, res: { id: '01NEW' } });
    await audit.record(reg, { via: 'grpc', req: { name: 'web-9', token: 'good' }, principal: { name: 'root', role: 'admin', groups: [] } }, { ok: false, err: new PermissionDeniedError('no') });
    await audit.record(reg, { via: 'grpc', req: { name: 'web-9', token: 'bad' } }, { ok: false, err: new UnauthenticatedError('the registration token was not accepted') });
    expect(parsed().map((l) => [l.who, l.action, l.target, l.result, l.executor_id])).toEqual([
      [{ kind: 'executor', id: '01EXEC', name: 'web-1' }, 'executor.deregister', 'web-1', 'ok', undefined],
      [{ kind: 'executor', id: '01GONE', name: '' }, 'executor.deregister', 'web-1', 'unauthenticated', undefined],
      [{ kind: 'registration', token: 'rack-7' }, 'executor.register', 'web-9', 'ok', '01NEW'],
      [{ kind: 'registration', token: 'rack-7', operator: 'root' }, 'executor.register', 'web-9', 'permission_denied', undefined],
      [{ kind: 'anonymous' }, 'executor.register', 'web-9', 'unauthenticated', undefined],
    ]);
  });

  it('still get written when the request cannot be read, and unknown failures are "internal"', async () => {
    const spec: AuditSpec<{ definitionJson: string }, object> = {
      action: 'job.create',
      target: (req) => (JSON.parse(req.definitionJson) as { name: string }).name,
    };
    await audit.record(spec, { via: 'grpc', principal: { name: 'a', role: 'admin', groups: [] }, req: { definitionJson: '{not json' } }, { ok: false, err: new Error('boom') });
    expect(parsed()[0]).toMatchObject({ action: 'job.create', target: '', result: 'internal', error: 'boom' });
  });
});

describe('a failing sink', () => {
  it('never fails the call: one warning while it fails, one note when it works again', async () => {
    sink.fail = true;
    const req = { job: 'j', args: {}, target: '', dryRun: false };
    for (let i = 0; i < 3; i++) await audit.record(executeSpec, { via: 'grpc', req }, { ok: true, res: { executionId: `x${i}` } });
    expect(warnings.filter((w) => w.includes('audit log write failed'))).toHaveLength(1);
    sink.fail = false;
    await audit.record(executeSpec, { via: 'grpc', req }, { ok: true, res: { executionId: 'x3' } });
    expect(warnings.filter((w) => w.includes('audit log writable again'))).toHaveLength(1);
    expect(parsed().map((l) => l.execution_id)).toEqual(['x3']);
  });
});

describe('the file sink', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'grid-audit-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the file 0600 (and its folder), appends, and reopens a rotated file', () => {
    const path = join(dir, 'sub', 'audit.log');
    const s = new FileSink(path);
    s.write('one\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    s.close();
    const again = new FileSink(path);
    again.write('two\n');
    expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n');
    renameSync(path, `${path}.1`);
    again.write('three\n'); // still the old file until reopened
    again.reopen();
    again.write('four\n');
    again.close();
    expect(readFileSync(`${path}.1`, 'utf8')).toBe('one\ntwo\nthree\n');
    expect(readFileSync(path, 'utf8')).toBe('four\n');
  });

  it('refuses a path it cannot open with a config error naming audit_log', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const path = join(file, 'audit.log');
    const err = (() => {
      try {
        new FileSink(path);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message.startsWith(`config audit_log: cannot open ${path} for appending: `)).toBe(true);
    expect(err!.message.endsWith('; give a writable path, or "-" for stdout')).toBe(true);
  });
});

describe('redact', () => {
  it('blanks quoted values of any length and bare values of four characters or more', () => {
    expect(redact('"ab" is not an int; got ab', ['ab'])).toBe('"<redacted>" is not an int; got ab');
    expect(redact('value hunter2 rejected', ['hunter2', undefined, ''])).toBe('value <redacted> rejected');
  });
});
