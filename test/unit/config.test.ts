import { mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import {
  clientConfigPaths,
  isEmbedded,
  loadClientConfig,
  loadControllerConfig,
  loadExecutorConfig,
  saveClientConfig,
  userClientConfigPath,
} from '../../src/config/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'grid-config-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function writeJson(name: string, value: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return path;
}

/** Runs `fn`, expects a ConfigError, returns it for key and message checks. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const EXTERNAL = { etcd: { endpoints: ['http://e:2379'] }, nats: { servers: ['nats://n:4222'] } };
const TOKEN = 'abcdefghijklmnop-0001';

describe('controller config', () => {
  it('has defaults', () => {
    const cfg = loadControllerConfig({ env: {}, cwd: dir });
    expect(cfg).toMatchObject({
      grpc_address: '127.0.0.1:7070',
      http_address: '127.0.0.1:7080',
      data_dir: join(dir, '.grid'),
      etcd: { endpoints: [], prefix: '/grid/', dial_timeout_ms: 5000 },
      nats: { servers: [], advertise: [], replicas: 1 },
      auth: 'tokens',
      tokens: [],
      registration_tokens: [],
      executor_ping_deadline_seconds: 30,
      log_level: 'info',
      log_format: 'text',
      execution_retention_hours: 168,
      execution_retention_max: 100_000,
      log_retention_hours: 168,
      log_max_bytes: 1024 ** 3,
      event_retention_hours: 168,
    });
    expect(isEmbedded(cfg)).toBe(true);
  });

  it('takes "" as no HTTP door, and refuses an http_address that is no host:port', () => {
    expect(loadControllerConfig({ env: {}, cwd: dir, flags: { http_address: '' } }).http_address).toBe('');
    expect(loadControllerConfig({ env: { GRID_HTTP_ADDRESS: '0.0.0.0:8080' }, cwd: dir }).http_address).toBe('0.0.0.0:8080');
    expect(() => loadControllerConfig({ env: { GRID_HTTP_ADDRESS: '8080' }, cwd: dir })).toThrow(/GRID_HTTP_ADDRESS: "8080" must be host:port/);
  });

  it('layers file over defaults, env over file, flags over env', () => {
    const file = writeJson('c.json', { ...EXTERNAL, grpc_address: '0.0.0.0:7000', log_level: 'debug', executor_ping_deadline_seconds: 10, data_dir: 'data' });
    const fromFile = loadControllerConfig({ file, env: {}, cwd: '/' });
    expect(fromFile.grpc_address).toBe('0.0.0.0:7000');
    expect(fromFile.data_dir).toBe(join(dir, 'data')); // relative to the file
    expect(fromFile.etcd.prefix).toBe('/grid/'); // nested default kept
    expect(fromFile.nats.advertise).toEqual(['nats://n:4222']); // advertise defaults to servers
    expect(isEmbedded(fromFile)).toBe(false);

    const env = { GRID_GRPC_ADDRESS: '0.0.0.0:7001', GRID_EXECUTOR_PING_DEADLINE: '20', GRID_NATS_SERVERS: 'nats://a:4222, nats://b:4222' };
    const fromEnv = loadControllerConfig({ file, env });
    expect(fromEnv.grpc_address).toBe('0.0.0.0:7001');
    expect(fromEnv.executor_ping_deadline_seconds).toBe(20);
    expect(fromEnv.nats.servers).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(fromEnv.log_level).toBe('debug');

    const fromFlags = loadControllerConfig({ file, env, flags: { grpc_address: '0.0.0.0:7002', executor_ping_deadline_seconds: '40', log_level: undefined } });
    expect(fromFlags.grpc_address).toBe('0.0.0.0:7002');
    expect(fromFlags.executor_ping_deadline_seconds).toBe(40);
    expect(fromFlags.log_level).toBe('debug');
  });

  it('takes log_format from the file, GRID_LOG_FORMAT and --log-format, for the controller and the executor', () => {
    const file = writeJson('lf.json', { ...EXTERNAL, log_format: 'json' });
    expect(loadControllerConfig({ file, env: {} }).log_format).toBe('json');
    expect(loadControllerConfig({ file, env: { GRID_LOG_FORMAT: 'text' } }).log_format).toBe('text');
    expect(loadControllerConfig({ file, env: { GRID_LOG_FORMAT: 'text' }, flags: { log_format: 'json' } }).log_format).toBe('json');
    expect(loadExecutorConfig({ env: { GRID_LOG_FORMAT: 'json' }, cwd: dir }).log_format).toBe('json');
    expect(loadExecutorConfig({ env: {}, cwd: dir, flags: { log_format: 'json' } }).log_format).toBe('json');
    const bad = configError(() => loadExecutorConfig({ env: { GRID_LOG_FORMAT: 'jsno' }, cwd: dir }));
    expect(bad.message).toBe('config GRID_LOG_FORMAT: "jsno" must be one of "text", "json" (did you mean "json"?)');
  });

  it('rejects unknown keys, top level and nested, naming the key with a suggestion', () => {
    const top = configError(() => loadControllerConfig({ file: writeJson('a.json', { grpc_adress: 'x:1' }), env: {} }));
    expect(top.key).toBe('grpc_adress');
    expect(top.message).toBe('config grpc_adress: unknown key (did you mean "grpc_address"?)');
    const nested = configError(() => loadControllerConfig({ file: writeJson('b.json', { nats: { servrs: [] } }), env: {} }));
    expect(nested.message).toBe('config nats.servrs: unknown key (did you mean "servers"?)');
    const far = configError(() => loadControllerConfig({ file: writeJson('c.json', { zzzzzzzz: 1 }), env: {} }));
    expect(far.message).toMatch(/^config zzzzzzzz: unknown key; valid keys are: grpc_address, data_dir, /);
    const item = configError(() => loadControllerConfig({ file: writeJson('d.json', { tokens: [{ name: 'a', token: TOKEN, role: 'admin', grups: [] }] }), env: {} }));
    expect(item.message).toBe('config tokens[0].grups: unknown key (did you mean "groups"?)');
  });

  it('rejects wrong types and bad enums, from the file and from env vars', () => {
    const ping = configError(() => loadControllerConfig({ file: writeJson('a.json', { executor_ping_deadline_seconds: 'ten' }), env: {} }));
    expect(ping.message).toBe('config executor_ping_deadline_seconds: "ten" must be a whole number ≥ 2');
    const low = configError(() => loadControllerConfig({ file: writeJson('b.json', { executor_ping_deadline_seconds: 1 }), env: {} }));
    expect(low.message).toBe('config executor_ping_deadline_seconds: 1 must be a whole number ≥ 2');
    const list = configError(() => loadControllerConfig({ file: writeJson('c.json', { etcd: { endpoints: 'http://e:2379' } }), env: {} }));
    expect(list.key).toBe('etcd.endpoints');
    const level = configError(() => loadControllerConfig({ file: writeJson('d.json', { log_level: 'inf' }), env: {} }));
    expect(level.message).toBe('config log_level: "inf" must be one of "debug", "info", "warn", "error" (did you mean "info"?)');
    const addr = configError(() => loadControllerConfig({ env: { GRID_GRPC_ADDRESS: 'localhost' } }));
    expect(addr.message).toBe('config GRID_GRPC_ADDRESS: "localhost" must be host:port, e.g. "127.0.0.1:7070"');
    const envPing = configError(() => loadControllerConfig({ env: { GRID_EXECUTOR_PING_DEADLINE: 'ten' } }));
    expect(envPing.message).toBe('config GRID_EXECUTOR_PING_DEADLINE: "ten" must be a whole number ≥ 2');
    const auth = configError(() => loadControllerConfig({ env: { GRID_AUTH: 'token' } }));
    expect(auth.message).toBe('config GRID_AUTH: "token" must be one of "tokens", "none" (did you mean "tokens"?)');
    const prefix = configError(() => loadControllerConfig({ file: writeJson('e.json', { etcd: { prefix: 'grid' } }), env: {} }));
    expect(prefix.key).toBe('etcd.prefix');
    const flag = configError(() => loadControllerConfig({ env: {}, flags: { log_retention_hours: 'many' } }));
    expect(flag.message).toBe('config flag log_retention_hours: "many" must be a whole number ≥ 0');
  });

  it('reports JSON syntax errors with file, line and column', () => {
    const file = writeJson('bad.json', '{\n  "grpc_address": "0.0.0.0:7070",\n}\n');
    const err = configError(() => loadControllerConfig({ file, env: {} }));
    expect(err.key).toBe(file);
    expect(err.message).toBe(`config ${file}: invalid JSON at line 3, column 1: unexpected "}" after ","; JSON allows no comma after the last field`);
    const lit = configError(() => loadControllerConfig({ file: writeJson('lit.json', '{"auth": tru}'), env: {} }));
    expect(lit.message).toContain('line 1, column 10');
    const empty = configError(() => loadControllerConfig({ file: writeJson('empty.json', ''), env: {} }));
    expect(empty.message).toContain('the file is empty');
    const arr = configError(() => loadControllerConfig({ file: writeJson('arr.json', '[]'), env: {} }));
    expect(arr.message).toContain('must hold one JSON object');
  });

  it('errors on a missing explicit file, naming the path', () => {
    const path = join(dir, 'nope.json');
    const err = configError(() => loadControllerConfig({ file: path, env: {} }));
    expect(err.message).toBe(`config ${path}: file not found`);
  });

  it('checks tokens: length, required fields, duplicates, env-admin', () => {
    const short = configError(() => loadControllerConfig({ file: writeJson('a.json', { tokens: [{ name: 'a', token: 'short', role: 'admin' }] }), env: {} }));
    expect(short.message).toBe('config tokens[0].token: must be at least 16 characters long (got 5)');
    const missing = configError(() => loadControllerConfig({ file: writeJson('b.json', { tokens: [{ name: 'a', token: TOKEN }] }), env: {} }));
    expect(missing.message).toBe('config tokens[0].role: missing; this key is required (one of "admin", "operator", "viewer", "metrics")');
    const twice = { name: 'a', token: TOKEN, role: 'viewer' };
    const dupName = configError(() => loadControllerConfig({ file: writeJson('c.json', { tokens: [twice, { ...twice, token: `${TOKEN}x` }] }), env: {} }));
    expect(dupName.key).toBe('tokens[1].name');
    const dupValue = configError(() => loadControllerConfig({ file: writeJson('d.json', { tokens: [twice, { ...twice, name: 'b' }] }), env: {} }));
    expect(dupValue.key).toBe('tokens[1].token');
    expect(dupValue.message).not.toContain(TOKEN);

    const cfg = loadControllerConfig({ file: writeJson('e.json', { tokens: [twice] }), env: { GRID_ADMIN_TOKEN: `${TOKEN}-admin`, GRID_REGISTRATION_TOKEN: 'boot' } });
    expect(cfg.tokens.map((x) => [x.name, x.role])).toEqual([['a', 'viewer'], ['env-admin', 'admin']]);
    expect(cfg.registration_tokens).toEqual([{ token: 'boot', groups: [] }]);
    expect(configError(() => loadControllerConfig({ env: { GRID_ADMIN_TOKEN: 'short' } })).key).toBe('GRID_ADMIN_TOKEN');
    expect(configError(() => loadControllerConfig({ file: writeJson('f.json', { tokens: [twice] }), env: { GRID_ADMIN_TOKEN: TOKEN } })).key).toBe('GRID_ADMIN_TOKEN');
  });

  it('requires both etcd.endpoints and nats.servers, or neither', () => {
    const message = 'config etcd.endpoints: set both etcd.endpoints and nats.servers, or neither for the embedded default';
    expect(configError(() => loadControllerConfig({ env: { GRID_ETCD_ENDPOINTS: 'http://e:2379' } })).message).toBe(message);
    expect(configError(() => loadControllerConfig({ file: writeJson('n.json', { nats: EXTERNAL.nats }), env: {} })).message).toBe(message);
    expect(isEmbedded(loadControllerConfig({ file: writeJson('both.json', EXTERNAL), env: {} }))).toBe(false);
  });

  it('takes lists of etcd endpoints and NATS servers, and nats.replicas from 1 to 5 on a NATS cluster only', () => {
    const env = {
      GRID_ETCD_ENDPOINTS: 'http://etcd-0:2379,http://etcd-1:2379,http://etcd-2:2379',
      GRID_NATS_SERVERS: 'nats://nats-0:4222, nats://nats-1:4222,nats://nats-2:4222',
      GRID_NATS_AUTH_DIR: '/etc/grid/nats-auth',
    };
    const cfg = loadControllerConfig({ env: { ...env, GRID_NATS_REPLICAS: '3' } });
    expect(cfg.etcd.endpoints).toEqual(['http://etcd-0:2379', 'http://etcd-1:2379', 'http://etcd-2:2379']);
    expect(cfg.nats).toMatchObject({ servers: ['nats://nats-0:4222', 'nats://nats-1:4222', 'nats://nats-2:4222'], replicas: 3 });
    // Executors are handed every server unless nats.advertise says otherwise.
    expect(cfg.nats.advertise).toEqual(cfg.nats.servers);
    expect(loadControllerConfig({ file: writeJson('r.json', { ...EXTERNAL, nats: { ...EXTERNAL.nats, replicas: 5 } }), env: {} }).nats.replicas).toBe(5);
    expect(configError(() => loadControllerConfig({ env: { ...env, GRID_NATS_REPLICAS: '6' } })).message).toMatch(/^config GRID_NATS_REPLICAS: .*from 1 to 5/);
    expect(configError(() => loadControllerConfig({ env: { ...env, GRID_NATS_REPLICAS: '0' } })).key).toBe('GRID_NATS_REPLICAS');
    expect(configError(() => loadControllerConfig({ env: { GRID_NATS_REPLICAS: '3' } })).message).toBe(
      'config nats.replicas: 3 needs a NATS cluster; the embedded nats-server is a single server, so use 1 or set nats.servers to the servers of a JetStream cluster',
    );
  });

  describe('etcd TLS and authentication', () => {
    const TLS_EXTERNAL = { ...EXTERNAL, etcd: { endpoints: ['https://e:2379'] } };

    it('loads etcd.tls, username and password from the file, paths relative to its folder', () => {
      mkdirSync(join(dir, 'conf'));
      const file = writeJson('conf/c.json', {
        ...TLS_EXTERNAL,
        etcd: { endpoints: ['https://e:2379'], tls: { ca_file: 'pki/ca.pem', cert_file: '/abs/client.pem', key_file: 'pki/client.key' }, username: 'grid', password: 'pw' },
      });
      const cfg = loadControllerConfig({ file, env: {}, cwd: '/elsewhere' });
      expect(cfg.etcd).toMatchObject({
        tls: { ca_file: join(dir, 'conf/pki/ca.pem'), cert_file: '/abs/client.pem', key_file: join(dir, 'conf/pki/client.key') },
        username: 'grid',
        password: 'pw',
        password_file: '',
      });
      // Not set: no TLS files, no user.
      expect(loadControllerConfig({ env: {}, cwd: dir }).etcd).toMatchObject({ tls: { ca_file: '', cert_file: '', key_file: '' }, username: '', password: '' });
    });

    it('loads them from GRID_ETCD_* variables, paths relative to the working directory', () => {
      writeFileSync(join(dir, 'etcd-password'), 'from-file\n');
      const cfg = loadControllerConfig({
        file: writeJson('x.json', EXTERNAL),
        cwd: dir,
        env: {
          GRID_ETCD_ENDPOINTS: 'https://a:2379,https://b:2379',
          GRID_ETCD_TLS_CA_FILE: 'ca.pem',
          GRID_ETCD_TLS_CERT_FILE: 'c.pem',
          GRID_ETCD_TLS_KEY_FILE: 'c.key',
          GRID_ETCD_USERNAME: 'grid',
          GRID_ETCD_PASSWORD_FILE: 'etcd-password',
        },
      });
      expect(cfg.etcd.endpoints).toEqual(['https://a:2379', 'https://b:2379']);
      expect(cfg.etcd.tls).toEqual({ ca_file: join(dir, 'ca.pem'), cert_file: join(dir, 'c.pem'), key_file: join(dir, 'c.key') });
      expect(cfg.etcd.password_file).toBe(join(dir, 'etcd-password'));
      expect(cfg.etcd.password).toBe('from-file'); // the editor's newline is not part of it
      expect(loadControllerConfig({ file: writeJson('y.json', EXTERNAL), env: { GRID_ETCD_USERNAME: 'u', GRID_ETCD_PASSWORD: 'p' } }).etcd.password).toBe('p');
    });

    it('refuses what does not fit together, naming the keys', () => {
      const load = (etcd: Record<string, unknown>, env: Record<string, string> = {}) =>
        configError(() => loadControllerConfig({ file: writeJson(`${uniqueFile()}.json`, { ...EXTERNAL, etcd: { endpoints: ['https://e:2379'], ...etcd } }), env }));
      writeFileSync(join(dir, 'pw'), 'secret\n');
      const both = load({ username: 'u', password: 'p', password_file: 'pw' });
      expect(both.message).toBe('config etcd.password_file: given together with etcd.password; set only one of etcd.password and etcd.password_file');
      expect(load({ username: 'u', password_file: 'pw' }, { GRID_ETCD_PASSWORD: 'p' }).key).toBe('etcd.password_file');
      expect(load({ username: 'u', password_file: 'missing' }).message).toMatch(/^config etcd.password_file: cannot read \/\S+\/missing: file not found$/);
      expect(load({ password: 'p' }).message).toBe('config etcd.username: missing; etcd.password needs the etcd user it belongs to');
      expect(load({ username: 'u' }).message).toBe('config etcd.password: missing for etcd user "u"; set etcd.password or etcd.password_file');
      expect(load({ tls: { cert_file: 'c.pem' } }).key).toBe('etcd.tls.key_file');
      expect(load({ tls: { key_file: 'c.key' } }).key).toBe('etcd.tls.cert_file');
      expect(load({ endpoints: ['https://a:2379', 'http://b:2379'] }).message).toBe(
        'config etcd.endpoints: "http://b:2379" is plaintext beside https:// endpoints; use https:// for all of them or none',
      );
      expect(load({ endpoints: ['http://a:2379'], tls: { ca_file: 'ca.pem' } }).message).toBe(
        'config etcd.endpoints: "http://a:2379" is plaintext but etcd.tls is set; use https:// endpoints to reach etcd over TLS',
      );
    });
  });

  it('keeps logs as long as executions unless log_retention_hours is set', () => {
    expect(loadControllerConfig({ env: { GRID_EXECUTION_RETENTION_HOURS: '48' }, cwd: dir }).log_retention_hours).toBe(48);
    expect(loadControllerConfig({ env: { GRID_EXECUTION_RETENTION_HOURS: '48' }, flags: { log_retention_hours: 12 }, cwd: dir }).log_retention_hours).toBe(12);
  });

  it('puts the audit log under data_dir by default; "-" is stdout; a file\'s relative path is from its folder', () => {
    expect(loadControllerConfig({ env: {}, cwd: dir }).audit_log).toBe(join(dir, '.grid', 'audit.log'));
    expect(loadControllerConfig({ env: { GRID_DATA_DIR: '/var/lib/grid' }, cwd: dir }).audit_log).toBe('/var/lib/grid/audit.log');
    expect(loadControllerConfig({ env: { GRID_AUDIT_LOG: '-' }, cwd: dir }).audit_log).toBe('-');
    expect(loadControllerConfig({ env: { GRID_AUDIT_LOG: 'logs/a.log' }, cwd: dir }).audit_log).toBe(join(dir, 'logs', 'a.log'));
    mkdirSync(join(dir, 'etc'));
    const file = writeJson('etc/c.json', { audit_log: 'audit/grid.log', registration_tokens: [{ name: 'rack-7', token: 'r' }, 'plain'] });
    const cfg = loadControllerConfig({ file, env: {}, cwd: '/' });
    expect(cfg.audit_log).toBe(join(dir, 'etc', 'audit', 'grid.log'));
    expect(cfg.registration_tokens.map((r) => r.name)).toEqual(['rack-7', '']);
  });
});

let files = 0;
const uniqueFile = () => `f${++files}`;

describe('executor config', () => {
  it('has defaults', () => {
    const cfg = loadExecutorConfig({ env: {}, cwd: dir });
    expect(cfg).toMatchObject({
      controller: '127.0.0.1:7070',
      registration_token: '',
      groups: [],
      labels: {},
      runners: ['host'],
      concurrency: 4,
      ping_interval_seconds: 10,
      nats_servers: [],
      state_file: join(dir, '.grid', 'executor-state.json'),
      work_dir: join(tmpdir(), 'grid-work'),
      shutdown_grace_seconds: 30,
      log_level: 'info',
      log_format: 'text',
      log_max_bytes_per_task: 10 * 1024 * 1024,
      metrics_address: '',
      kubernetes: { kube_config: '', default_namespace: 'default', job_retries: 0, ttl_seconds_after_finished: 3600, resources: { requests: {}, limits: {} } },
    });
    expect(cfg.name).toMatch(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/);
  });

  it('takes metrics_address from GRID_METRICS_ADDRESS, and refuses one that is not host:port', () => {
    expect(loadExecutorConfig({ env: { GRID_METRICS_ADDRESS: '127.0.0.1:9102' }, cwd: dir }).metrics_address).toBe('127.0.0.1:9102');
    const bad = configError(() => loadExecutorConfig({ env: { GRID_METRICS_ADDRESS: '9102' }, cwd: dir }));
    expect(bad.message).toBe('config GRID_METRICS_ADDRESS: "9102" must be host:port, e.g. "127.0.0.1:7070"');
  });

  it('puts the state file next to the config file and resolves relative paths from it', () => {
    const file = writeJson('e.json', { work_dir: 'work' });
    const cfg = loadExecutorConfig({ file, env: {}, cwd: '/' });
    expect(cfg.state_file).toBe(join(dir, 'executor-state.json'));
    expect(cfg.work_dir).toBe(join(dir, 'work'));
    expect(loadExecutorConfig({ file, env: { GRID_WORK_DIR: 'w2' }, cwd: '/srv' }).work_dir).toBe(resolve('/srv', 'w2'));
  });

  it('layers file, env (list and map forms) and flags', () => {
    const file = writeJson('e.json', { name: 'edge-1', groups: ['edge'], concurrency: 2, kubernetes: { default_namespace: 'jobs' } });
    const env = { GRID_GROUPS: 'edge, edge-eu', GRID_LABELS: 'zone=eu-1,rack=r7', GRID_CONCURRENCY: '6', GRID_RUNNERS: 'host,kubernetes' };
    const cfg = loadExecutorConfig({ file, env, flags: { concurrency: 8, name: 'edge-2' } });
    expect(cfg).toMatchObject({ name: 'edge-2', groups: ['edge', 'edge-eu'], labels: { zone: 'eu-1', rack: 'r7' }, concurrency: 8, runners: ['host', 'kubernetes'] });
    expect(cfg.kubernetes.default_namespace).toBe('jobs');
    expect(configError(() => loadExecutorConfig({ env: { GRID_LABELS: 'zone' } })).key).toBe('GRID_LABELS');
    expect(configError(() => loadExecutorConfig({ env: { GRID_GROUPS: 'ok,Bad_Group' } })).message).toMatch(/^config GRID_GROUPS: "Bad_Group" must be a DNS label/);
  });

  it('takes a list of NATS servers (nats_servers, GRID_NATS_SERVERS); empty = the ones register hands over', () => {
    expect(loadExecutorConfig({ env: {} }).nats_servers).toEqual([]);
    expect(loadExecutorConfig({ env: { GRID_NATS_SERVERS: 'nats://a:4222,nats://b:4222' } }).nats_servers).toEqual(['nats://a:4222', 'nats://b:4222']);
    expect(loadExecutorConfig({ env: {}, flags: { nats_servers: 'nats://a:4222, nats://c:4222' } }).nats_servers).toEqual(['nats://a:4222', 'nats://c:4222']);
  });

  it('takes several controller addresses separated by commas, and names a bad one', () => {
    expect(loadExecutorConfig({ env: { GRID_CONTROLLER: 'grid-1:7070, grid-2:7070' } }).controller).toBe('grid-1:7070, grid-2:7070');
    expect(configError(() => loadExecutorConfig({ env: { GRID_CONTROLLER: 'grid-1:7070,grid-2' } })).message).toBe(
      'config GRID_CONTROLLER: "grid-2" must be host:port, e.g. "127.0.0.1:7070" (in the list "grid-1:7070,grid-2": host:port separated by commas)',
    );
    expect(configError(() => loadExecutorConfig({ env: { GRID_CONTROLLER: 'a:1,a:1' } })).message).toBe('config GRID_CONTROLLER: "a:1" is listed twice');
  });

  it('accepts ping_interval as another spelling of ping_interval_seconds, but not both', () => {
    expect(loadExecutorConfig({ file: writeJson('a.json', { ping_interval: 5 }), env: {} }).ping_interval_seconds).toBe(5);
    expect(loadExecutorConfig({ file: writeJson('b.json', { ping_interval_seconds: 7 }), env: {} }).ping_interval_seconds).toBe(7);
    const both = configError(() => loadExecutorConfig({ file: writeJson('c.json', { ping_interval: 5, ping_interval_seconds: 7 }), env: {} }));
    expect(both.key).toBe('ping_interval_seconds');
  });

  it('names nested keys and list items in errors', () => {
    const nested = configError(() => loadExecutorConfig({ file: writeJson('a.json', { kubernetes: { resources: { limit: {} } } }), env: {} }));
    expect(nested.message).toBe('config kubernetes.resources.limit: unknown key (did you mean "limits"?)');
    const runner = configError(() => loadExecutorConfig({ file: writeJson('b.json', { runners: ['host', 'kubernetess'] }), env: {} }));
    expect(runner.message).toBe('config runners[1]: "kubernetess" must be one of "host", "kubernetes" (did you mean "kubernetes"?)');
    const mapValue = configError(() => loadExecutorConfig({ file: writeJson('c.json', { kubernetes: { resources: { limits: { cpu: 1 } } } }), env: {} }));
    expect(mapValue.message).toBe('config kubernetes.resources.limits.cpu: 1 must be a string (quote it: "1")');
    const name = configError(() => loadExecutorConfig({ env: {}, flags: { name: 'Edge_1' } }));
    expect(name.key).toBe('flag name');
  });
});

describe('client config', () => {
  it('has defaults and layers env and flags over the file', () => {
    const env = { HOME: dir, XDG_CONFIG_HOME: '' };
    expect(loadClientConfig({ env, cwd: dir })).toEqual({ controller: '127.0.0.1:7070', token: '', output: 'table', timeout_ms: 15000, ca_file: '', plaintext: false, nats_servers: [], nats_creds: '', nats_ca_file: '' });
    const file = writeJson('client.json', { controller: 'grid:7070', token: 't1', output: 'json', ca_file: 'ca.crt', nats_servers: ['nats://n:4222'], nats_creds: 'ops.creds' });
    const cfg = loadClientConfig({ file, env: { GRID_TOKEN: 't2' }, flags: { timeout_ms: '500' }, cwd: '/' });
    // A CA path (and a NATS credentials path) in the file is relative to the file's folder.
    expect(cfg).toEqual({
      controller: 'grid:7070', token: 't2', output: 'json', timeout_ms: 500, ca_file: join(dir, 'ca.crt'), plaintext: false,
      nats_servers: ['nats://n:4222'], nats_creds: join(dir, 'ops.creds'), nats_ca_file: '',
    });
    expect(loadClientConfig({ file, env: { GRID_NATS_SERVERS: 'nats://a:1,nats://b:2', GRID_NATS_CA_FILE: 'n.crt' }, cwd: '/x' })).toMatchObject({
      nats_servers: ['nats://a:1', 'nats://b:2'], nats_ca_file: '/x/n.crt',
    });
    expect(loadClientConfig({ file, env: { GRID_CA_FILE: 'other.crt', GRID_PLAINTEXT: 'true' }, cwd: '/x' })).toMatchObject({ ca_file: '/x/other.crt', plaintext: true });
  });

  it('looks up GRID_CLIENT_CONFIG, then ./.grid/client.json, then the user file', () => {
    const home = join(dir, 'home');
    expect(clientConfigPaths(dir, { HOME: home })).toEqual([join(home, '.config', 'grid', 'client.json')]);
    expect(userClientConfigPath({ XDG_CONFIG_HOME: '/xdg', HOME: home })).toBe('/xdg/grid/client.json');
    mkdirSync(join(dir, '.grid'));
    writeJson('.grid/client.json', { controller: 'dev:7070' });
    expect(clientConfigPaths(dir, { HOME: home })[0]).toBe(join(dir, '.grid', 'client.json'));
    expect(loadClientConfig({ env: { HOME: home }, cwd: dir }).controller).toBe('dev:7070');
    expect(clientConfigPaths(dir, { HOME: home, GRID_CLIENT_CONFIG: 'x.json' })).toEqual([join(dir, 'x.json')]);
    const err = configError(() => loadClientConfig({ env: { GRID_CLIENT_CONFIG: 'x.json' }, cwd: dir }));
    expect(err.message).toBe(`config ${join(dir, 'x.json')}: file not found`);
  });

  it('saves with mode 0600, merging into an existing file, and loads back', () => {
    const path = join(dir, 'deep', 'grid', 'client.json');
    saveClientConfig(path, { controller: 'grid:7070', token: TOKEN });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    saveClientConfig(path, { output: 'json' });
    expect(loadClientConfig({ file: path, env: {} })).toEqual({ controller: 'grid:7070', token: TOKEN, output: 'json', timeout_ms: 15000, ca_file: '', plaintext: false, nats_servers: [], nats_creds: '', nats_ca_file: '' });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(configError(() => saveClientConfig(path, { output: 'xml' as 'json' })).key).toBe('output');
    saveClientConfig(path, { output: 'yaml' });
    expect(loadClientConfig({ file: path, env: {} }).output).toBe('yaml');
    // GRID_OUTPUT takes the same choices as -o, and names them when it is wrong.
    expect(loadClientConfig({ file: path, env: { GRID_OUTPUT: 'wide' } }).output).toBe('wide');
    expect(configError(() => loadClientConfig({ file: path, env: { GRID_OUTPUT: 'xml' } })).message).toMatch(/"table", "wide", "json", "yaml", "name"/);
  });
});

describe('controller tls', () => {
  it('is on by default; paths in a file are relative to it; a certificate needs its key, a CA its key', () => {
    const d = loadControllerConfig({ env: {}, cwd: dir });
    expect(d.tls).toEqual({ enabled: true, cert_file: '', key_file: '', ca_cert_file: '', ca_key_file: '', server_names: [], executor_cert_days: 30 });
    const file = writeJson('tls.json', { tls: { cert_file: 'c.crt', key_file: 'c.key', ca_cert_file: '/abs/ca.crt', ca_key_file: '/abs/ca.key' } });
    expect(loadControllerConfig({ file, env: {}, cwd: '/' }).tls).toMatchObject({ cert_file: join(dir, 'c.crt'), key_file: join(dir, 'c.key'), ca_cert_file: '/abs/ca.crt' });
    expect(loadControllerConfig({ env: { GRID_TLS_ENABLED: 'false' } }).tls.enabled).toBe(false);
    const noKey = configError(() => loadControllerConfig({ file: writeJson('t2.json', { tls: { cert_file: 'c.crt' } }), env: {} }));
    expect(noKey.key).toBe('tls.key_file');
    const noCaKey = configError(() => loadControllerConfig({ file: writeJson('t3.json', { tls: { ca_cert_file: 'ca.crt' } }), env: {} }));
    expect(noCaKey.key).toBe('tls.ca_key_file');
    expect(configError(() => loadControllerConfig({ file: writeJson('t4.json', { tls: { executor_cert_days: 0 } }), env: {} })).key).toBe('tls.executor_cert_days');
  });
});

describe('example files', () => {
  const root = resolve(import.meta.dirname, '../../config');
  it('load without errors', () => {
    const c = loadControllerConfig({ file: join(root, 'controller.example.json'), env: {} });
    expect(c.tokens).toHaveLength(4);
    expect(isEmbedded(c)).toBe(false);
    const e = loadExecutorConfig({ file: join(root, 'executor.example.json'), env: {} });
    expect(e.runners).toEqual(['host', 'kubernetes']);
    expect(loadClientConfig({ file: join(root, 'client.example.json'), env: {} }).output).toBe('table');
  });
});
