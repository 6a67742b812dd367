// Structured logs with named children and key/value fields (like hclog's Named/With), written by
// pino, one line each on stderr, in one of two formats:
//   text: `<time> <LEVEL> <name>: <message> key=value …`
//   json: {"level":"info","time":"…","pid":…,"hostname":"…","name":"…","key":value,…,"msg":"…"}
// Fields named like secrets are censored in both (a second line of defence: callers already
// leave secrets out).

import pino, { type Logger as Pino } from 'pino';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  named(name: string): Logger;
  with(fields: Fields): Logger;
}

export interface LoggerOptions {
  level?: Level;
  /** text (the default) or json: one JSON object a line, for Loki, ELK and the like. */
  format?: LogFormat;
  name?: string;
  /** Where each line goes, without its newline; default: stderr, written synchronously. */
  write?: (line: string) => void;
  fields?: Fields;
}

/** What a censored field's value is replaced with. */
export const REDACTED = '[REDACTED]';

/**
 * Field names whose values are never written, at the top level of a line's fields and two levels
 * down in an object field. Exact names (pino's redaction matches paths, not patterns).
 */
export const SECRET_FIELDS = [
  'token', 'tokens', 'secret', 'secrets', 'password', 'passwd', 'authorization', 'Authorization', 'cookie',
  'registration_token', 'registrationToken', 'admin_token', 'adminToken', 'api_key', 'apiKey',
  'executor_secret', 'executorSecret', 'replace_secret', 'replaceSecret', 'secrets_key', 'secretsKey',
  'seed', 'nkey_seed', 'nkeySeed', 'jwt', 'user_jwt', 'userJwt', 'credentials', 'creds',
  'private_key', 'privateKey', 'key_pem', 'keyPem',
] as const;

const REDACT_PATHS = SECRET_FIELDS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);

/**
 * Keys of a JSON line itself. A field of the same name (an executor's `name`, say) is written as
 * `fields.<key>` in JSON, so that it never shadows the logger's; the text format shows it as it was.
 */
const RESERVED = new Set(['level', 'time', 'name', 'msg', 'pid', 'hostname']);
const RENAMED = 'fields.';

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'text';
  const write = opts.write ?? writeStderr;
  const sink = { write: format === 'json' ? (s: string) => write(s.endsWith('\n') ? s.slice(0, -1) : s) : (s: string) => write(toText(s)) };
  const root = pino(
    {
      level: opts.level ?? 'info',
      // pid and hostname in JSON (what a log shipper keys on); none in text, which never showed them.
      ...(format === 'text' ? { base: null } : {}),
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
    },
    sink,
  );
  return node(root, opts.name ?? '', opts.fields ?? {});
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = createLogger({ write: () => {}, level: 'error' });

// One pino child per name; `with` fields are merged into each call's, so a key given in both is
// written once, with the call's value, where it first appeared (as the text format always did).
// `with` shares its parent's child: making a pino child (with its redaction) costs more than a
// task's own work on an executor, which adds fields per task.
function node(root: Pino, name: string, base: Fields, p: Pino = name ? root.child({ name }) : root): Logger {
  const emit = (level: Level) => (msg: string, fields?: Fields) => {
    if (!p.isLevelEnabled(level)) return;
    p[level](prepare(fields ? { ...base, ...fields } : base), msg);
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    named: (n) => node(root, name ? `${name}.${n}` : n, base),
    with: (f) => node(root, name, { ...base, ...f }, p),
  };
}

/** Errors as their message, undefined left out, reserved keys renamed. */
function prepare(fields: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    out[RESERVED.has(k) ? RENAMED + k : k] = v instanceof Error ? v.message : v;
  }
  return out;
}

/** pino's JSON line (redacted already) in the text format. */
function toText(json: string): string {
  const { time, level, name, msg, ...fields } = JSON.parse(json) as Fields;
  let kv = '';
  for (const [key, v] of Object.entries(fields)) {
    const k = key.startsWith(RENAMED) && RESERVED.has(key.slice(RENAMED.length)) ? key.slice(RENAMED.length) : key;
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    kv += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
  }
  return `${String(time)} ${String(level).toUpperCase().padEnd(5)} ${name ? `${String(name)}: ` : ''}${String(msg ?? '')}${kv}`;
}

// One synchronous writer for the process's stderr, made on first use: lines written just before
// process.exit() are not lost, and lines of the executors sharing the stream stay whole.
let stderr: pino.DestinationStream | undefined;
function writeStderr(line: string): void {
  (stderr ??= pino.destination({ dest: 2, sync: true })).write(line + '\n');
}
