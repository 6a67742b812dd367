// The audit log: one JSON line per mutating request — who, what, target, result, execution id —
// appended to its own sink (a file, or stdout). Front doors only declare, per method, what to
// record (an AuditSpec); building and writing the line lives here so every door shares it.

import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, GridError, type ErrorKind } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { Principal, Role } from './auth.js';

/** Who made the call, as far as the controller could tell. Never a token or secret. */
export type AuditWho =
  | { kind: 'operator'; name: string; role: Role }
  | { kind: 'executor'; id: string; name: string }
  /** Register: the registration token's name (an admin's name too when it authorized a --replace). */
  | { kind: 'registration'; token: string; operator?: string }
  | { kind: 'anonymous' };

export interface AuditLine {
  time: string;
  /** The front door the call came through. */
  via: string;
  who: AuditWho;
  action: string;
  /** What was acted on: job, execution id, file or executor name ("" when the call never said). */
  target: string;
  result: 'ok' | ErrorKind;
  execution_id?: string;
  executor_id?: string;
  /** Execute: the target the execution ran (or would run) on. */
  on?: string;
  dry_run?: true;
  /** Execute: an idempotency key's earlier execution was returned; nothing new was started. */
  reused?: true;
  /** When refused or failed: the error's message, with the request's argument values blanked out. */
  error?: string;
}

/**
 * What a front door declares for one mutating method. `req` is the request (for a client stream,
 * its first message); `res` is there only when the call succeeded.
 */
export interface AuditSpec<Req, Res> {
  action: string | ((req: Req) => string);
  target: (req: Req, res?: Res) => string | undefined | Promise<string | undefined>;
  executionId?: (req: Req, res?: Res) => string | undefined;
  executorId?: (req: Req, res?: Res) => string | undefined;
  on?: (req: Req, res?: Res) => string | undefined;
  dryRun?: (req: Req) => boolean;
  reused?: (req: Req, res?: Res) => boolean;
  /**
   * Who, for calls that prove identity in the request rather than with a bearer token. An
   * executor's name is looked up here when only its id is given.
   */
  who?: (req: Req, res?: Res) => AuditWho | { kind: 'executor'; id: string };
  /** Values from the request that must never appear in the line (blanked out of error messages). */
  hide?: (req: Req) => Array<string | undefined>;
}

/** How one call ended: a response, or the error it was refused or failed with. */
export type Outcome<Res> = { ok: true; res: Res } | { ok: false; err: unknown };

export interface AuditSink {
  write(line: string): void;
  /** Opens the file again (after it was rotated away). */
  reopen(): void;
  close(): void;
}

/** Appends to a file created 0600; each line is one write(2) on an O_APPEND descriptor. */
export class FileSink implements AuditSink {
  private fd: number;
  constructor(readonly path: string) {
    try {
      this.fd = openOrCreate(path);
    } catch (err) {
      throw new ConfigError('audit_log', `cannot open ${path} for appending: ${(err as Error).message}; give a writable path, or "-" for stdout`, { cause: err });
    }
  }
  write(line: string): void {
    writeSync(this.fd, line);
  }
  reopen(): void {
    const fd = openSync(this.path, 'a', 0o600);
    const old = this.fd;
    this.fd = fd;
    closeSync(old);
  }
  close(): void {
    closeSync(this.fd);
  }
}

/** Opens for appending; a missing folder is made (0700) first. */
function openOrCreate(path: string): number {
  try {
    return openSync(path, 'a', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    return openSync(path, 'a', 0o600);
  }
}

export class StdoutSink implements AuditSink {
  write(line: string): void {
    process.stdout.write(line);
  }
  reopen(): void {}
  close(): void {}
}

/** The sink for the `audit_log` config value: "-" is stdout, anything else a file path. */
export function openAuditSink(where: string): AuditSink {
  return where === '-' ? new StdoutSink() : new FileSink(where);
}

const REDACTED = '<redacted>';
/** Shorter values are blanked only where they appear quoted, so short words in messages survive. */
const MIN_BARE_LENGTH = 4;

/** `text` with every one of `values` blanked out, quoted (as error messages show values) or bare. */
export function redact(text: string, values: Array<string | undefined>): string {
  let out = text;
  for (const v of values) {
    if (!v) continue;
    out = out.split(JSON.stringify(v)).join(JSON.stringify(REDACTED));
    if (v.length >= MIN_BARE_LENGTH) out = out.split(v).join(REDACTED);
  }
  return out;
}

/**
 * Builds and writes audit lines. A failing sink never fails the call (fail-open): the request
 * has already taken effect when its line is written; the failure is logged once, and once more
 * when writing works again.
 */
export class AuditLog {
  private failing = false;

  constructor(
    private readonly sink: AuditSink,
    private readonly log: Logger,
    private readonly executorName: (id: string) => Promise<string | undefined> = async () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Builds the line for one finished call (pure but for the executor-name lookup). */
  async line<Req, Res>(
    spec: AuditSpec<Req, Res>,
    call: { via: string; principal?: Principal; req: Req; hide?: Array<string | undefined> },
    outcome: Outcome<Res>,
  ): Promise<AuditLine> {
    const res = outcome.ok ? outcome.res : undefined;
    const read = async <T>(f: ((req: Req, res?: Res) => T | undefined | Promise<T | undefined>) | undefined): Promise<T | undefined> => {
      try {
        return await f?.(call.req, res);
      } catch {
        return undefined; // a request too malformed to read still gets its line
      }
    };
    const hide = [...(call.hide ?? []), ...((await read((req) => spec.hide?.(req))) ?? [])];
    const line: AuditLine = {
      time: new Date(this.now()).toISOString(),
      via: call.via,
      who: await this.who(spec.who !== undefined, call.principal, await read((req, r) => spec.who?.(req, r))),
      action: (typeof spec.action === 'string' ? spec.action : await read((req) => (spec.action as (r: Req) => string)(req))) ?? 'unknown',
      target: (await read(spec.target)) ?? '',
      result: outcome.ok ? 'ok' : outcome.err instanceof GridError ? outcome.err.kind : 'internal',
    };
    const executionId = await read(spec.executionId);
    if (executionId) line.execution_id = executionId;
    const executorId = await read(spec.executorId);
    if (executorId) line.executor_id = executorId;
    const on = await read(spec.on);
    if (on) line.on = on;
    if (await read((req) => spec.dryRun?.(req))) line.dry_run = true;
    if (await read((req, r) => spec.reused?.(req, r))) line.reused = true;
    if (!outcome.ok) line.error = redact(errorText(outcome.err), hide);
    return line;
  }

  /** Records one finished call. Never throws. */
  async record<Req, Res>(
    spec: AuditSpec<Req, Res>,
    call: { via: string; principal?: Principal; req: Req; hide?: Array<string | undefined> },
    outcome: Outcome<Res>,
  ): Promise<void> {
    let text: string;
    try {
      text = JSON.stringify(await this.line(spec, call, outcome)) + '\n';
    } catch (err) {
      this.log.error('audit line could not be built', { action: String(spec.action), error: (err as Error).message });
      return;
    }
    try {
      this.sink.write(text);
      if (this.failing) this.log.info('audit log writable again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn('audit log write failed; requests go on, their audit lines are lost until it works again', { error: (err as Error).message });
      this.failing = true;
    }
  }

  /** After log rotation (SIGHUP): later lines go to a fresh file at the same path. */
  reopen(): void {
    try {
      this.sink.reopen();
      this.log.info('audit log reopened');
    } catch (err) {
      this.log.warn('audit log could not be reopened; still writing to the old file', { error: (err as Error).message });
    }
  }

  close(): void {
    this.sink.close();
  }

  private async who(declares: boolean, p: Principal | undefined, declared: AuditWho | { kind: 'executor'; id: string } | undefined): Promise<AuditWho> {
    if (declared?.kind === 'executor') {
      if ('name' in declared) return declared;
      return { kind: 'executor', id: declared.id, name: (await this.executorName(declared.id).catch(() => undefined)) ?? '' };
    }
    // A bearer token beside a registration token: the admin who authorized a --replace.
    if (declared?.kind === 'registration' && p) return { ...declared, operator: p.name };
    if (declared) return declared;
    if (!declares && p) return { kind: 'operator', name: p.name, role: p.role };
    return { kind: 'anonymous' };
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
