// Structured logs with named children and key/value fields (like hclog's Named/With), one
// line each on stderr: `<time> <LEVEL> <name>: <message> key=value …`.

export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

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
  name?: string;
  write?: (line: string) => void;
  fields?: Fields;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = order[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const name = opts.name ?? '';
  const base = opts.fields ?? {};
  const emit = (level: Level, msg: string, fields?: Fields) => {
    if (order[level] < min) return;
    const kv = formatFields({ ...base, ...fields });
    write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} ${name ? name + ': ' : ''}${msg}${kv}`);
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    named: (n) => createLogger({ ...opts, name: name ? `${name}.${n}` : n }),
    with: (f) => createLogger({ ...opts, fields: { ...base, ...f } }),
  };
}

/** A logger that drops everything (tests, library defaults). */
export const silentLogger: Logger = createLogger({ write: () => {}, level: 'error' });

function formatFields(fields: Fields): string {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = typeof v === 'string' ? v : v instanceof Error ? v.message : JSON.stringify(v);
    out += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
  }
  return out;
}
