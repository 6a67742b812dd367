// The NATS request intake over the in-memory Bus and Store: a request with a valid token is
// executed and answered on its inbox (and audited with via nats); one without a valid token, a
// malformed one or one without an idempotency key is refused and terminated; one whose reply
// subject is not an inbox is dropped unanswered; one that arrives while etcd does not answer is
// nak'ed with a delay, never terminated, and runs once etcd is back.

import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryBus, type MemoryDelivery } from '../../src/bus/memory.js';
import { SUBMIT_HEADERS, type SubmitAnswer } from '../../src/bus/messages.js';
import { AuditLog } from '../../src/controller/audit.js';
import { Authenticator } from '../../src/controller/auth.js';
import { NatsIntake, retryDelayMs } from '../../src/controller/doors/nats-intake/intake.js';
import { isInbox } from '../../src/controller/doors/nats-intake/request.js';
import { ExecutionService } from '../../src/controller/executions.js';
import { JobPublisher } from '../../src/controller/job-publisher.js';
import { JobService } from '../../src/controller/jobs.js';
import { SecretBox } from '../../src/controller/secrets.js';
import { UnavailableError } from '../../src/errors.js';
import type { IdempotencyClaim } from '../../src/store/store.js';
import type { Execution } from '../../src/domain/execution.js';
import { MemoryExecutionStore, MemoryExecutorStore, MemoryJobStore, MemoryLeases } from '../../src/store/memory.js';
import { createLogger } from '../../src/util/log.js';
import { MemorySink } from '../harness/audit-sink.js';

const OPERATOR = 'unit-operator-token-0000000';
const VIEWER = 'unit-viewer-token-111111111';
const INBOX = '_INBOX_UTEST.answers';

/** An execution store whose etcd can be "down": every call then fails as the etcd one does. */
class FlakyExecutionStore extends MemoryExecutionStore {
  down = false;
  private check(): void {
    if (this.down) throw new UnavailableError('etcd at http://etcd.test:2379 is not answering; retry (test)');
  }
  override async create(x: Execution, claim?: IdempotencyClaim) {
    this.check();
    return super.create(x, claim);
  }
  override async idempotencyEntry(requester: string, keyHash: string) {
    this.check();
    return super.idempotencyEntry(requester, keyHash);
  }
}

async function rig() {
  const log = createLogger({ level: 'error', name: 'test', write: () => {} });
  const jobs = new MemoryJobStore();
  await new JobService(jobs).create({ name: 'admin', role: 'admin', groups: [] }, {
    definitionJson: JSON.stringify({ name: 'hello', description: 'says hello', command: ['true'] }),
    replace: false,
  });
  const store = new FlakyExecutionStore();
  const bus = new MemoryBus();
  const executions = new ExecutionService({
    store, jobs, executors: new MemoryExecutorStore(new MemoryLeases()), registry: { authenticate: async () => { throw new Error('unused'); } },
    bus, box: SecretBox.fromBase64(randomBytes(32).toString('base64')), publisher: new JobPublisher({ queue: bus, jobs }),
    instance: 'controller-1', log, fileDigests: async () => ({}),
  });
  const sink = new MemorySink();
  const auth = new Authenticator('tokens', [
    { name: 'ops', token: OPERATOR, role: 'operator', groups: [] },
    { name: 'view', token: VIEWER, role: 'viewer', groups: [] },
  ]);
  const intake = new NatsIntake({ bus, executions, ctx: { auth, log, audit: new AuditLog(sink, log) } });
  await intake.start();

  /** Publishes a request as a NATS client would, waits until it is handled, and returns its delivery and the answers sent. */
  async function submit(body: unknown, headers: Record<string, string | undefined>): Promise<{ d: MemoryDelivery; answers: SubmitAnswer[] }> {
    const before = bus.answers.length;
    const h = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const d = bus.submit(typeof body === 'string' ? body : JSON.stringify(body), h);
    await bus.idle();
    return { d, answers: bus.answers.slice(before).map((a) => a.answer) };
  }
  const headers = (o: { token?: string; id?: string; replyTo?: string } = {}) => ({
    [SUBMIT_HEADERS.authorization]: o.token === undefined ? `Bearer ${OPERATOR}` : o.token && `Bearer ${o.token}`,
    [SUBMIT_HEADERS.msgId]: o.id ?? 'req-1',
    [SUBMIT_HEADERS.replyTo]: o.replyTo ?? INBOX,
  });
  return { bus, store, sink, intake, submit, headers };
}

describe('NATS intake', () => {
  it('executes a request with a valid token, answers on its inbox, acks it, and audits it with via nats', async () => {
    const r = await rig();
    const { d, answers } = await r.submit({ job: 'hello', target: 'all' }, r.headers());
    expect(d.settled).toBe('ack');
    expect(answers).toHaveLength(1);
    const a = answers[0]!;
    expect(a).toMatchObject({ request_id: 'req-1', answer: 'accepted' });
    const response = (a as { response: { executionId: string; execution: { job: string } } }).response;
    expect(response.executionId).toMatch(/^[0-9A-Z]{26}$/);
    expect(response.execution.job).toBe('hello');
    expect(r.bus.answers[0]!.replyTo).toBe(INBOX);
    const [line] = r.sink.parsed();
    expect(line).toMatchObject({ via: 'nats', who: { kind: 'operator', name: 'ops' }, action: 'execution.create', target: 'hello', result: 'ok', execution_id: response.executionId });
    expect(r.sink.lines.join('')).not.toContain(OPERATOR);

    // The same message delivered again (its controller died before the ack): its request id is
    // its idempotency key, so it answers with the same execution and starts nothing.
    const again = await r.submit({ job: 'hello', target: 'all' }, r.headers());
    expect(again.answers[0]).toMatchObject({ answer: 'accepted', response: { executionId: response.executionId, reused: true } });
    // An idempotency key of the request's own wins over its id, as at the other doors.
    const keyed = await r.submit({ job: 'hello', idempotency_key: 'deploy-1' }, r.headers({ id: 'req-2' }));
    const keyedAgain = await r.submit({ job: 'hello', idempotencyKey: 'deploy-1' }, r.headers({ id: 'req-3' }));
    const idOf = (x: SubmitAnswer) => (x as { response: { executionId: string } }).response.executionId;
    expect(idOf(keyedAgain.answers[0]!)).toBe(idOf(keyed.answers[0]!));
    expect(idOf(keyed.answers[0]!)).not.toBe(response.executionId);
  });

  it('refuses a request without a valid token, or whose token may not execute, and terminates it', async () => {
    const r = await rig();
    for (const [token, kind] of [['', 'unauthenticated'], ['not-a-token-at-all', 'unauthenticated'], [VIEWER, 'permission_denied']] as const) {
      const { d, answers } = await r.submit({ job: 'hello' }, r.headers({ token }));
      expect(d.settled).toBe('term');
      expect(answers).toEqual([{ request_id: 'req-1', answer: 'refused', error: { kind, message: expect.any(String) } }]);
    }
    expect(r.sink.parsed().map((l) => [l.who.kind, l.target, l.result])).toEqual([
      ['anonymous', 'hello', 'unauthenticated'],
      ['anonymous', 'hello', 'unauthenticated'],
      ['operator', 'hello', 'permission_denied'],
    ]);
    // An unreadable request of an unknown caller is refused for the caller first.
    const { answers } = await r.submit('{not json', r.headers({ token: '' }));
    expect(answers[0]).toMatchObject({ answer: 'refused', error: { kind: 'unauthenticated' } });
    expect((await r.store.list({ limit: 10 })).executions).toHaveLength(0);
  });

  it('refuses a malformed request, naming what is wrong, and one with neither idempotency key nor request id', async () => {
    const r = await rig();
    const refusal = async (body: unknown, h = r.headers()) => {
      const { d, answers } = await r.submit(body, h);
      expect(d.settled).toBe('term');
      const a = answers[0] as { answer: string; error: { kind: string; message: string } };
      expect(a.answer).toBe('refused');
      expect(a.error.kind).toBe('validation');
      return a.error.message;
    };
    expect(await refusal('{not json')).toMatch(/^the request is not JSON/);
    expect(await refusal([1, 2])).toMatch(/must be a JSON object/);
    expect(await refusal({ job: 'hello', targt: 'all' })).toBe('targt: unknown field (did you mean "target"?)');
    expect(await refusal({ target: 'all' })).toBe('job: missing: name the job to execute');
    expect(await refusal({ job: 'hello' }, { ...r.headers(), [SUBMIT_HEADERS.msgId]: '' })).toMatch(/^idempotency_key: missing, and the request has no Nats-Msg-Id/);
    expect(await refusal({ job: 'hello', idempotency_key: 'has spaces in it' })).toMatch(/idempotency/);
  });

  it('drops a request whose reply subject is not an inbox, without answering there', async () => {
    const r = await rig();
    const { d } = await r.submit({ job: 'hello' }, r.headers({ replyTo: 'grid.job.node.01JD3V0Q8W4Z5M2K7T9XG6B1RA' }));
    expect(d.settled).toBe('term');
    expect(r.bus.answers).toEqual([]);
    expect(r.sink.parsed()[0]).toMatchObject({ via: 'nats', result: 'validation', who: { name: 'ops' } });
    expect((await r.store.list({ limit: 10 })).executions).toHaveLength(0);
    expect(['_INBOX.abc.1', '_INBOX_UABC.x.y'].map(isInbox)).toEqual([true, true]);
    expect(['_INBOX.>', '_INBOX.*', 'grid.cancel.x', '_INBOX', '_INBOX. x'].map(isInbox)).toEqual([false, false, false, false, false]);
  });

  it('naks a request while etcd does not answer, says it waits, and runs it once etcd is back', async () => {
    const r = await rig();
    r.store.down = true;
    const { d, answers } = await r.submit({ job: 'hello' }, r.headers());
    expect(d.settled).toBe('nak');
    expect(d.nakDelayMs).toBe(1_000);
    expect(answers[0]).toMatchObject({ answer: 'waiting', reason: expect.stringMatching(/^etcd at .* is not answering/), retry_in_ms: 1_000 });
    expect(r.sink.lines).toEqual([]); // not answered yet: nothing recorded

    r.store.down = false;
    await expect.poll(() => r.bus.submissionDeliveries.length, { timeout: 5_000 }).toBe(2);
    await r.bus.idle();
    const second = r.bus.submissionDeliveries[1]!;
    expect(second.deliveries).toBe(2);
    expect(second.settled).toBe('ack');
    const last = r.bus.answers.at(-1)!.answer as { answer: string; response: { executionId: string; reused?: boolean } };
    expect(last).toMatchObject({ answer: 'accepted', response: { executionId: expect.any(String) } });
    expect(last.response.reused).toBeUndefined(); // started now, not found by its key
    expect(r.sink.parsed().map((l) => l.result)).toEqual(['ok']);
    expect(retryDelayMs(1)).toBe(1_000);
    expect(retryDelayMs(3)).toBe(4_000);
    expect(retryDelayMs(50)).toBe(10_000);
  });
});
