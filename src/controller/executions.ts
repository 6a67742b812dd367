// Use-cases for executions: execute (validate, resolve the target, record it with its tasks and
// send the job messages; once per idempotency key), get, list, watch, cancel, and BeginTask for
// executors. Transport-free.

import type { Bus } from '../bus/bus.js';
import { JOB_ACK_WAIT_MS } from '../bus/consumers.js';
import type { CancelMessage } from '../bus/messages.js';
import { resolveArgs } from '../domain/args.js';
import { broadcastGroup, dispatchExecution, planTasks } from '../domain/dispatch-plan.js';
import { groupsOf, isLive, type ExecutorRecord } from '../domain/executor.js';
import { EXECUTION_STATES, isTerminalExecution, type Execution, type ExecutionState } from '../domain/execution.js';
import { isTaskOf, mayBegin, NOT_YET } from '../domain/claim-rules.js';
import { sendable, stopExecution } from '../domain/execution-rules.js';
import type { JobDefinition } from '../domain/job.js';
import { checkTaskCount, LIMIT_DEFAULTS, type Limits } from '../domain/limits.js';
import { findTask } from '../domain/task-index.js';
import type { TaskToRun } from '../domain/task.js';
import { checkIdempotencyKey, idempotencyKeyHash, requestDigest, type IdempotentRequest } from '../domain/idempotency.js';
import { formatTarget, parseTarget } from '../domain/target.js';
import { ConflictError, FailedPreconditionError, LimitExceededError, NotFoundError, PermissionDeniedError, ValidationError } from '../errors.js';
import { noCounts, type ExecutionStore, type ExecutorStore, type IdempotencyClaim, type IdempotencyEntry, type JobStore, type ListPage, type StateCounts } from '../store/store.js';
import type { Batcher } from '../util/batcher.js';
import { isId, newId } from '../util/ids.js';
import type { Logger } from '../util/log.js';
import { authorize, authorizeJobGroups, type Principal } from './auth.js';
import { newClaimBatcher, taskToRun, type ClaimOutcome, type ClaimRequest } from './claim-batch.js';
import { authorizeExecution, authorizeTarget, executionInScope, type NodeGroups } from './scope.js';
import type { ExecutorRegistry } from './executors.js';
import type { JobPublisher } from './job-publisher.js';
import { describePolicy, type Retention } from './retention.js';
import type { SecretBox } from './secrets.js';
import type { StreamQuota } from './stream-quota.js';
import { executionView, type ExecutionView } from './views.js';

/** What Execute is asked: the request's own fields (job, args, target, limits), and these. */
export interface ExecuteInput extends IdempotentRequest {
  dryRun: boolean;
  /** "" = none; see checkIdempotencyKey. Dry runs ignore it. */
  idempotencyKey?: string;
}

export interface ExecuteResult {
  execution?: ExecutionView;
  dryRun?: DryRunRow[];
  /** The idempotency key had started `execution` already; nothing new was started. */
  reused?: boolean;
}

export interface DryRunRow {
  executorId: string;
  executorName: string;
  skipped: boolean;
  reason: string;
}

/** Index entries read at most per state to count one job's executions. */
const COUNT_SCAN = 20_000;
/** Records read at most per state to count what a scoped token may see. */
const SCOPED_COUNT_SCAN = 2_000;

/** A page of executions (newest first), and what retention has pruned (see Retention). */
export interface ExecutionList extends Omit<ListPage, 'executions'> {
  executions: ExecutionView[];
  /** The newest pruned execution was created at this time; 0 = none pruned. */
  prunedBeforeMs: number;
  /** The policy in words, e.g. "7 days, at most 100000 finished"; "" = none. */
  retention: string;
}

export class ExecutionService {
  constructor(
    private readonly d: {
      store: ExecutionStore;
      jobs: Pick<JobStore, 'getJob' | 'getVersion'>;
      executors: Pick<ExecutorStore, 'all' | 'liveIds'>;
      /** Digests of configuration files as recorded in etcd when they were put. */
      fileDigests: (names: string[]) => Promise<Record<string, string>>;
      registry: Pick<ExecutorRegistry, 'authenticate'>;
      /** Stops to executors, and requests for the dispatcher. */
      bus: Pick<Bus, 'sendStop' | 'requestDispatch'>;
      box: SecretBox;
      publisher: JobPublisher;
      /** This controller process (ControllerInstances.id), recorded as the dispatcher. */
      instance: string;
      /** What pruning of finished executions has done, for lists to say so; absent = none. */
      retention?: Pick<Retention, 'status' | 'policy'>;
      log: Logger;
      now?: () => number;
      /** Sizes of arguments, tasks per execution (default LIMIT_DEFAULTS). */
      limits?: Limits;
      /** Open watches per token, shared with GetLogs; absent = not counted. */
      streams?: StreamQuota;
      /**
       * How long after a fan-out's broadcast pointer its per-executor messages follow: for the
       * tasks not started (default BROADCAST_FALLBACK_MS), and for those still running too
       * (default JOB_ACK_WAIT_MS).
       */
      broadcastFallback?: { pendingMs: number; runningMs: number };
    },
  ) {
    this.claims = newClaimBatcher(this.d, () => this.now());
  }

  private get limits(): Limits {
    return this.d.limits ?? LIMIT_DEFAULTS;
  }

  private now(): number {
    return this.d.now?.() ?? Date.now();
  }

  async execute(p: Principal, input: ExecuteInput): Promise<ExecuteResult> {
    authorize(p, 'executions:write');
    const key = checkIdempotencyKey(input.idempotencyKey ?? '');
    const claim = key && !input.dryRun ? this.idempotencyClaim(p, key, input) : undefined;
    if (claim) {
      // A retry is answered without redoing the work, even once the job has changed. This read
      // only saves work: the transaction that creates the execution is what holds the key.
      const prior = await this.d.store.idempotencyEntry(claim.requester, claim.keyHash);
      if (prior) return this.reuse(p, key, claim, prior);
    }
    const job = await this.d.jobs.getJob(input.job);
    const def = job.definition;
    authorizeJobGroups(p, def.name, def.authorized_groups);
    const { args, secrets } = resolveArgs(def, input.args, { requireSecrets: !input.dryRun, limits: this.limits });
    const targetText = input.target || def.target || 'all';
    const target = parseTarget(targetText);
    if (p.groups.length) authorizeTarget(p, target, targetText, await this.nodeGroups());
    if (!Number.isInteger(input.timeoutSeconds) || input.timeoutSeconds < 0) {
      throw new ValidationError(`timeout: ${input.timeoutSeconds} must be a whole number of seconds`);
    }
    const batchSpec = countSpec('batch_size', input.batchSize);
    const maxFailuresSpec = countSpec('max_failures', input.maxFailures);
    if (input.dryRun) return { dryRun: await this.dryRun(def, target) };

    const now = this.now();
    const timeout = input.timeoutSeconds || 0;
    const x: Execution = {
      id: newId(now),
      job: def.name,
      job_version: job.version,
      args,
      secret_names: Object.keys(secrets),
      secret_box: Object.keys(secrets).length ? this.d.box.seal(secrets) : undefined,
      target: formatTarget(target),
      requester: p.name,
      state: 'QUEUED',
      reason: '',
      created_at_ms: now,
      updated_at_ms: now,
      finished_at_ms: 0,
      timeout_seconds: timeout,
      deadline_ms: timeout ? now + timeout * 1000 : 0,
      wait_offline_ms: input.waitOfflineMs,
      batch_spec: batchSpec || undefined,
      max_failures_spec: maxFailuresSpec || undefined,
      batch_size: 0,
      max_failures: 0,
      tasks: [],
    };
    // The files' digests are pinned now, from etcd: executors check what they fetch against these.
    if (def.files.length) x.file_digests = await this.d.fileDigests(def.files.map((f) => f.name));
    // Dispatched here and now: the target is resolved against the registry (held in memory),
    // the task set is written with the record in one group commit, then the job messages go out.
    const executors = await this.d.executors.all();
    const { failure } = dispatchExecution(x, def, executors, now);
    checkTaskCount(x.target, x.tasks.length, this.limits);
    if (!failure) {
      x.dispatcher = this.d.instance;
      x.broadcast_group = broadcastGroup(x);
    }
    const created = await this.d.store.create(x, claim).catch((err: unknown) => {
      // The write may have been committed though its answer was lost (etcd changed leader, a
      // deadline passed): the sweep looks for the record a while and sends its job messages.
      // Only this process would: for every other replica, the dispatcher named in it is alive.
      if (!(err instanceof LimitExceededError || err instanceof ConflictError)) this.d.publisher.owe(x.id, { unknownSince: this.now() });
      throw err;
    });
    if (!created.created) return this.reuse(p, key, claim!, created.existing);
    if (failure) this.d.log.info('execution failed at dispatch', { id: x.id, reason: failure });
    await this.sendJobs(x, def, new Set(executors.filter((e) => isLive(e.state)).map((e) => e.id)));
    this.d.log.debug('execution dispatched', { id: x.id, job: x.job, target: x.target, by: p.name });
    return { execution: executionView(x) };
  }

  /** The key, filed under the caller (two callers' keys never meet), with the request's digest. */
  private idempotencyClaim(p: Principal, key: string, input: ExecuteInput): IdempotencyClaim {
    return { requester: p.name, keyHash: idempotencyKeyHash(key), digest: requestDigest(key, input) };
  }

  /**
   * The execution an idempotency key started, for a retry of the same request; another request
   * under the key is refused. If that execution's job messages did not all go out, the sweeper
   * sends them (as for any execution), so nothing is sent from here.
   */
  private async reuse(p: Principal, key: string, claim: IdempotencyClaim, entry: IdempotencyEntry): Promise<ExecuteResult> {
    if (entry.digest !== claim.digest) {
      throw new FailedPreconditionError(
        `idempotency key ${JSON.stringify(key)} was used within 24 h for a different request (execution ${entry.execution_id}); use a new key`,
      );
    }
    const x = await this.d.store.mustGet(entry.execution_id);
    await this.authorizeVisible(p, x, 'see');
    this.d.log.debug('execution reused by idempotency key', { id: x.id, by: p.name });
    return { execution: executionView(x), reused: true };
  }

  /**
   * Sends the job messages of the tasks released on `x`. If that fails, the execution is kept
   * for the sweeper to send again (retryUnsent); if this process dies first, another replica's
   * sweeper sees it gone and does (Execution.dispatcher). A broadcast fan-out sends one pointer
   * to its group instead, and per-executor messages only to executors offline now (they find it
   * in their queue when back, as without the broadcast), BROADCAST_FALLBACK_MS later for the
   * tasks not started by then (a lost copy of the pointer costs that delay, never the task), and
   * one ack wait later for those still running too: an executor that restarted while it ran one
   * learns of it from that message as soon as it would have from a redelivery.
   */
  private async sendJobs(x: Execution, def: JobDefinition, live: Set<string>): Promise<void> {
    let tasks = sendable(x);
    if (tasks.length === 0) return;
    if (x.broadcast_group) {
      try {
        this.d.publisher.broadcast({ ...x, broadcast_group: x.broadcast_group });
      } catch (err) {
        this.d.log.warn('could not broadcast the fan-out pointer; the per-executor messages follow', { id: x.id, error: (err as Error).message });
      }
      const id = x.id;
      const { pendingMs, runningMs } = this.d.broadcastFallback ?? { pendingMs: BROADCAST_FALLBACK_MS, runningMs: JOB_ACK_WAIT_MS };
      setTimeout(() => void this.sendFallback(id, true), pendingMs).unref();
      setTimeout(() => void this.sendFallback(id, false), runningMs).unref();
      tasks = tasks.filter((t) => !live.has(t.executor_id));
      if (tasks.length === 0) return;
    }
    try {
      await this.d.publisher.publish(x, tasks, def);
    } catch (err) {
      this.d.publisher.owe(x.id);
      this.d.log.warn('could not send the job messages yet; will retry', { id: x.id, error: (err as Error).message });
    }
  }

  /** A broadcast fan-out's per-executor messages: for its tasks not started, or not ended (fallbackTasks). */
  private async sendFallback(id: string, pendingOnly: boolean): Promise<void> {
    try {
      const x = (await this.d.store.get(id))?.value;
      const sent = x && !isTerminalExecution(x.state) ? await this.d.publisher.resend(x, { pendingOnly }) : 0;
      if (sent) this.d.log.debug('sent the per-executor messages of a broadcast fan-out', { id, tasks: sent });
    } catch (err) {
      this.d.publisher.owe(id, { pendingOnly });
      this.d.log.warn('could not send the per-executor messages of a broadcast fan-out yet; will retry', { id, error: (err as Error).message });
    }
  }

  /** Sends again the job messages that failed to go out from this process. */
  async retryUnsent(): Promise<void> {
    const sent = await this.d.publisher.sendOwed(async (id) => (await this.d.store.get(id))?.value, this.now());
    for (const { id, tasks } of sent) this.d.log.info('sent job messages that could not be sent before', { id, tasks });
  }

  /** Asks the dispatcher (any replica's) to dispatch a record an older version left QUEUED. */
  async publishRequest(executionId: string): Promise<void> {
    await this.d.bus.requestDispatch(executionId);
  }

  private async dryRun(def: JobDefinition, target: ReturnType<typeof parseTarget>): Promise<DryRunRow[]> {
    const executors = await this.d.executors.all();
    const plan = planTasks({ target, executors, runner: def.runner, waitOfflineMs: 0, now: this.now() });
    if (plan.failure) throw new FailedPreconditionError(`target ${formatTarget(target)}: ${plan.failure}`);
    checkTaskCount(formatTarget(target), plan.tasks.length, this.limits);
    const rows: DryRunRow[] = plan.tasks.map((t) => ({
      executorId: t.executor_id,
      executorName: t.pool ? `(any member of pool ${t.pool})` : t.executor_name,
      skipped: t.state === 'SKIPPED',
      reason: t.reason,
    }));
    for (const e of plan.excluded) rows.push({ executorId: '', executorName: e.name, skipped: true, reason: e.reason });
    return rows;
  }

  /** Each registered executor's groups by name, for group scopes of tokens. */
  async nodeGroups(): Promise<NodeGroups> {
    const byName = new Map((await this.d.executors.all()).map((e) => [e.name, e.groups]));
    return (name) => byName.get(name);
  }

  /** Refuses an execution outside a scoped token's groups (see scope.ts). */
  async authorizeVisible(p: Principal, x: Execution, what: string): Promise<void> {
    if (p.groups.length) authorizeExecution(p, x, await this.nodeGroups(), what);
  }

  async get(p: Principal, id: string): Promise<ExecutionView> {
    authorize(p, 'executions:read');
    const x = await this.d.store.mustGet(id);
    await this.authorizeVisible(p, x, 'see');
    return executionView(x);
  }

  /**
   * A page of executions, newest first, through the store's indexes. A scoped token sees only
   * executions inside its groups: pages are read on until the page is full or there are no more.
   */
  async list(p: Principal, f: { job?: string; state?: ExecutionState; limit?: number; pageAfter?: string }): Promise<ExecutionList> {
    authorize(p, 'executions:read');
    if (f.pageAfter && !isId(f.pageAfter)) {
      throw new ValidationError(`page_after: ${JSON.stringify(f.pageAfter)} is not an execution id; pass the next_page of the page before`);
    }
    const limit = Math.min(Math.max(f.limit || 20, 1), 1000);
    const status = await this.d.retention?.status();
    const pruned = { prunedBeforeMs: status?.pruned_before_ms ?? 0, retention: this.d.retention ? describePolicy(this.d.retention.policy) : '' };
    if (!p.groups.length) {
      const page = await this.d.store.list({ job: f.job, state: f.state, limit, before: f.pageAfter });
      return { ...page, executions: page.executions.map(executionView), ...pruned };
    }
    const groups = await this.nodeGroups();
    const executions: ExecutionView[] = [];
    let before = f.pageAfter;
    let keysRead = 0;
    for (;;) {
      const page = await this.d.store.list({ job: f.job, state: f.state, limit: 200, before });
      keysRead += page.keysRead;
      for (const x of page.executions) {
        if (!executionInScope(p, x.target, groups)) continue;
        executions.push(executionView(x));
        if (executions.length === limit) return { executions, next: x.id, keysRead, ...pruned };
      }
      if (!page.next) return { executions, next: '', keysRead, ...pruned };
      before = page.next;
    }
  }

  /**
   * Executions per state (of one job, when given), beside the list's filters. A scoped token's
   * are counted from the records it may see, at most SCOPED_COUNT_SCAN read per state.
   */
  async counts(p: Principal, f: { job?: string }): Promise<StateCounts> {
    authorize(p, 'executions:read');
    if (!p.groups.length) return this.d.store.countByState({ job: f.job, maxScan: COUNT_SCAN });
    const groups = await this.nodeGroups();
    const counts = noCounts();
    const atLeast: ExecutionState[] = [];
    for (const state of EXECUTION_STATES) {
      let before: string | undefined;
      for (let read = 0; ; ) {
        const page = await this.d.store.list({ job: f.job, state, limit: 500, before });
        read += page.executions.length;
        counts[state] += page.executions.filter((x) => executionInScope(p, x.target, groups)).length;
        if (!page.next) break;
        if (read >= SCOPED_COUNT_SCAN) {
          atLeast.push(state);
          break;
        }
        before = page.next;
      }
    }
    return { counts, atLeast };
  }

  async cancel(p: Principal, id: string, reason: string): Promise<ExecutionView> {
    authorize(p, 'executions:write');
    const cur = await this.d.store.mustGet(id);
    await this.authorizeVisible(p, cur, 'cancel');
    if (isTerminalExecution(cur.state)) {
      throw new FailedPreconditionError(`execution ${id} already ended: ${cur.state}`);
    }
    const why = reason ? `cancelled by ${p.name}: ${reason}` : `cancelled by ${p.name}`;
    const { execution } = await this.d.store.update(id, (x) => stopExecution(x, 'CANCELLED', why, this.now()));
    await this.broadcastStop(execution, 'cancelled');
    this.d.log.info('execution cancelled', { id, by: p.name });
    return executionView(execution);
  }

  /**
   * Tells each executor that may be running a task of this execution to stop it (core NATS;
   * BeginTask refuses the tasks not begun yet): the executors its tasks name and, for a pool
   * task not taken yet, every member of that pool. Each executor may hear only its own subject.
   */
  async broadcastStop(x: Execution, reason: CancelMessage['reason']): Promise<void> {
    const to = new Set<string>();
    let pools: string[] = [];
    for (const t of x.tasks) {
      if (t.executor_id) to.add(t.executor_id);
      else if (t.pool) pools.push(t.pool);
    }
    pools = [...new Set(pools)];
    if (pools.length) {
      for (const e of await this.d.executors.all()) if (groupsOf(e).some((g) => pools.includes(g))) to.add(e.id);
    }
    for (const executorId of to) this.d.bus.sendStop(executorId, { execution_id: x.id, reason });
  }

  /**
   * Snapshots of the execution as it changes, ending after a terminal one. A watcher that reads
   * slower than the record changes gets the latest snapshot, not every one in between (a big
   * fan-out changes many times a second; each snapshot is the whole record). Counts as one of
   * the token's open streams (limits.streams_per_token) until it ends.
   */
  watch(p: Principal, id: string, signal: AbortSignal): AsyncIterable<ExecutionView> {
    const run = () => this.watchRecord(p, id, signal);
    return this.d.streams?.hold(p, run) ?? run();
  }

  private async *watchRecord(p: Principal, id: string, signal: AbortSignal): AsyncIterable<ExecutionView> {
    authorize(p, 'executions:read');
    const first = await this.d.store.get(id);
    if (!first) await this.d.store.mustGet(id); // throws NotFound
    await this.authorizeVisible(p, first!.value, 'watch');
    yield executionView(first!.value);
    if (isTerminalExecution(first!.value.state)) return;
    for await (const x of this.d.store.changes(id, first!.revision, signal)) {
      yield executionView(x);
      // Terminal states never change back, so the newest snapshot is terminal if any was.
      if (isTerminalExecution(x.state)) return;
    }
  }

  /** BeginTask: claims the task for this executor process and hands out what to run. */
  async beginTask(input: { executorId: string; secret: string; session: string; executionId: string; taskKey: string; retryOf?: number }): Promise<BeginAnswer> {
    const e = await this.d.registry.authenticate(input.executorId, input.secret);
    return this.claim(e, input.session, input);
  }

  /** BeginTask for several tasks of one executor at once; answers in the order asked. */
  async beginTasks(input: {
    executorId: string;
    secret: string;
    session: string;
    tasks: Array<{ executionId: string; taskKey: string; retryOf?: number }>;
  }): Promise<BeginAnswer[]> {
    if (input.tasks.length > MAX_BEGIN_TASKS) {
      throw new ValidationError(`tasks: ${input.tasks.length} in one BeginTasks call; at most ${MAX_BEGIN_TASKS}`);
    }
    const e = await this.d.registry.authenticate(input.executorId, input.secret);
    return Promise.all(input.tasks.map((t) => this.claim(e, input.session, t)));
  }

  /**
   * BeginTask's answer: the task is claimed (claimTask, by compare-and-swap in the record) and
   * the recorded task is handed out with, only here, its secret values.
   *
   * The record is first taken from the store's own last write of it (this controller created
   * it, say), without reading etcd. That copy is only believed when the claim's write, guarded
   * by the copy's revision, went through: then no other writer had changed it, and the answer
   * comes from that very record. Any other outcome (a refusal, a lost compare, a claim with
   * nothing to write) is asked again from a fresh read.
   */
  private async claim(e: ExecutorRecord, session: string, ref: { executionId: string; taskKey: string; retryOf?: number }): Promise<BeginAnswer> {
    const own = this.d.store.ownCopy(ref.executionId);
    if (own) {
      const r = await this.taskOf(e, own.value, ref.taskKey);
      if (!('refused' in r)) {
        const out = await this.claims.add({ executor: e, session, ref, def: r.task.definition, version: own.value.job_version, ownCopy: true });
        if (out.proven) return this.beginAnswer(out);
      }
    }
    const r = await this.recordedTask(e, ref.executionId, ref.taskKey);
    if ('refused' in r) return r.refused;
    return this.beginAnswer(await this.claims.add({ executor: e, session, ref, def: r.task.definition, version: r.x.job_version, ownCopy: false }));
  }

  private beginAnswer(out: ClaimOutcome): BeginAnswer {
    const { answer } = out;
    if (!answer.claimed) return { proceed: false, reason: answer.reason, secrets: {}, ...(answer.later ? { later: true } : {}) };
    const secrets = out.secretBox ? this.d.box.open(out.secretBox) : {};
    return { proceed: true, reason: '', secrets, task: out.task!, attempt: answer.attempt };
  }

  /** BeginTask's claims, group-committed (see newClaimBatcher); made in the constructor, once `d` is set. */
  private readonly claims: Batcher<ClaimRequest, ClaimOutcome>;

  /**
   * Heartbeat's check of the tasks an executor says it runs: those of an execution that was
   * cancelled or timed out (a cancel it missed), and those whose claim another attempt took over.
   */
  async tasksToStop(executorId: string, running: Array<{ executionId: string; taskKey: string; attempt: number }>): Promise<TaskStop[]> {
    const out: TaskStop[] = [];
    await Promise.all(
      running.map(async (r) => {
        const x = (await this.d.store.getShared(r.executionId))?.value;
        if (!x) return;
        if (x.state === 'CANCELLED' || x.state === 'TIMED_OUT') {
          out.push({ executionId: x.id, taskKey: r.taskKey, reason: x.state === 'CANCELLED' ? 'cancelled' : 'timed_out', note: x.reason });
          return;
        }
        const t = findTask(x.tasks, r.taskKey);
        if (t && r.attempt > 0 && (t.attempts > r.attempt || (t.executor_id && t.executor_id !== executorId))) {
          out.push({ executionId: x.id, taskKey: r.taskKey, reason: 'superseded', note: `attempt ${t.attempts} of the task was claimed by ${t.executor_name || 'another executor'}` });
        }
      }),
    );
    return out;
  }

  /**
   * The task as the record has it, for the executor it belongs to: the definition at the
   * execution's version, its arguments, limits and file digests. Nothing of it comes from the
   * job message, which only names the task. Secrets are left to the caller that hands them out.
   */
  private async recordedTask(e: ExecutorRecord, executionId: string, taskKey: string): Promise<{ refused: BeginAnswer } | { x: Execution; task: TaskToRun }> {
    const cur = await this.d.store.getShared(executionId);
    if (!cur) return refuse(`execution ${executionId} does not exist`);
    return this.taskOf(e, cur.value, taskKey);
  }

  /** recordedTask() over a record at hand. */
  private async taskOf(e: ExecutorRecord, x: Execution, taskKey: string): Promise<{ refused: BeginAnswer } | { x: Execution; task: TaskToRun }> {
    const executionId = x.id;
    const why = mayBegin(x, taskKey, e.id, groupsOf(e), this.now());
    if (why === NOT_YET) return refuse(why, true);
    if (why) {
      // Asking for someone else's task is not a race an honest executor runs into: say who.
      const asked = findTask(x.tasks, taskKey);
      if (asked && !isTaskOf(asked, e.id, groupsOf(e))) {
        this.d.log.warn('BeginTask refused: the task is not this executor\'s', { executor: e.name, id: e.id, execution: executionId, task: taskKey, why });
      }
      return refuse(why);
    }
    let def: JobDefinition;
    try {
      def = await this.d.publisher.definitionOf(x);
    } catch (err) {
      if (err instanceof NotFoundError) return refuse(`job ${x.job} version ${x.job_version} is no longer stored: ${err.message}`);
      throw err;
    }
    const t = findTask(x.tasks, taskKey)!;
    if (t.pool && !e.runners.includes(def.runner)) return refuse(`this executor does not offer the "${def.runner}" runner the pool task needs`);
    return { x, task: taskToRun(x, def) };
  }

  /**
   * GetTaskFile's check: the executor may read `name` only while it may run a task of this
   * execution that uses the file. Returns the digest recorded for it at Execute.
   */
  async taskFile(input: { executorId: string; secret: string; executionId: string; taskKey: string; name: string }): Promise<string> {
    const e = await this.d.registry.authenticate(input.executorId, input.secret);
    const r = await this.recordedTask(e, input.executionId, input.taskKey);
    if ('refused' in r) throw new PermissionDeniedError(`executor ${e.name} may not read the files of task ${input.taskKey} of execution ${input.executionId}: ${r.refused.reason}`);
    const claimed = notClaimedBy(r.x, input.taskKey, e.id);
    if (claimed) throw new PermissionDeniedError(`executor ${e.name} may not read the files of task ${input.taskKey} of execution ${input.executionId}: ${claimed}`);
    const f = r.task.files.find((file) => file.name === input.name);
    if (!f) throw new PermissionDeniedError(`executor ${e.name}: job ${r.task.job} does not use a file named "${input.name}"`);
    return f.digest;
  }

  /**
   * The serialize lock a task's definition names, for the executor the task belongs to. With
   * `mustBegin` (taking the lock) the task must still be one it may begin; refreshing or
   * releasing needs only that the executor is who it says (the lock entry names it).
   */
  async taskLock(
    input: { executorId: string; secret: string; executionId: string; taskKey: string },
    mustBegin: boolean,
  ): Promise<{ executor: ExecutorRecord; lock: string; ticket: string }> {
    const e = await this.d.registry.authenticate(input.executorId, input.secret);
    const ticket = `${input.executionId}.${input.taskKey}`;
    let def: JobDefinition;
    if (mustBegin) {
      const r = await this.recordedTask(e, input.executionId, input.taskKey);
      if ('refused' in r) throw new FailedPreconditionError(`task ${input.taskKey} of execution ${input.executionId} may not take its lock: ${r.refused.reason}`);
      const claimed = notClaimedBy(r.x, input.taskKey, e.id);
      if (claimed) throw new FailedPreconditionError(`task ${input.taskKey} of execution ${input.executionId} may not take its lock: ${claimed}`);
      def = r.task.definition;
    } else {
      const x = (await this.d.store.getShared(input.executionId))?.value;
      if (!x) throw new NotFoundError('execution', input.executionId);
      def = await this.d.publisher.definitionOf(x);
    }
    if (!def.serialize) throw new FailedPreconditionError(`job ${def.name} is not serialized; it has no lock`);
    return { executor: e, lock: def.serialize, ticket };
  }
}

export interface BeginAnswer {
  proceed: boolean;
  reason: string;
  secrets: Record<string, string>;
  task?: TaskToRun;
  /** Not yet: the task may be begun later (its job message is offered again). */
  later?: boolean;
  /** When proceeding: the attempt this claim is. */
  attempt?: number;
}

function refuse(reason: string, later = false): { refused: BeginAnswer } {
  return { refused: { proceed: false, reason, secrets: {}, ...(later ? { later } : {}) } };
}

export interface TaskStop {
  executionId: string;
  taskKey: string;
  reason: 'cancelled' | 'timed_out' | 'superseded';
  note: string;
}

/** Why a task is not claimed by this executor now (its files and lock are its claimant's only); undefined if it is. */
function notClaimedBy(x: Execution, taskKey: string, executorId: string): string | undefined {
  const t = findTask(x.tasks, taskKey);
  if (!t) return `execution ${x.id} has no task ${taskKey}`;
  if (t.state !== 'RUNNING') return `the task is ${t.state}, not claimed (BeginTask claims it)`;
  if (t.executor_id !== executorId) return `the task is claimed by executor ${t.executor_name || t.executor_id}`;
  return undefined;
}

/**
 * How long after a fan-out's broadcast pointer its per-executor messages follow, for the tasks
 * not ended by then: what a lost copy of the pointer delays a task by at most.
 */
export const BROADCAST_FALLBACK_MS = 2_000;

/** Most tasks one BeginTasks call may ask about. */
export const MAX_BEGIN_TASKS = 256;

/** `N` or `N%` (N ≥ 1, a percentage at most 100), or "" for none. */
function countSpec(field: string, spec: string): string {
  const v = (spec ?? '').trim();
  if (!v) return '';
  const m = /^(\d+)(%?)$/.exec(v);
  if (!m || Number(m[1]) < 1 || (m[2] && Number(m[1]) > 100)) {
    throw new ValidationError(`${field}: "${v}" must be a whole number of tasks (e.g. 5) or a percentage of them from 1% to 100% (e.g. 25%)`);
  }
  return v;
}
