// The `*_file` forms of secret config keys for the controller, the executor and grid-cli: read
// from a file (relative to the config file's folder, or to the working directory from the
// environment), one trailing newline dropped; both forms at once, or an unreadable file, is one
// ConfigError naming the keys and the path.

import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { loadClientConfig, loadControllerConfig, loadExecutorConfig, saveClientConfig } from '../../src/config/index.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'grid-config-secrets-'));
  mkdirSync(join(dir, 'etc/secrets'), { recursive: true });
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function write(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error('expected a ConfigError');
}

const ADMIN = 'admin-token-from-a-file-0001';
const KEY = Buffer.alloc(32, 7).toString('base64');

describe('controller', () => {
  it('reads secrets_key, tokens[].token and registration_tokens[].token from files next to the config', () => {
    write('etc/secrets/admin', `${ADMIN}\n`);
    write('etc/secrets/key', `${KEY}\n`);
    write('etc/secrets/reg', 'reg-token-a\n');
    const file = write('etc/controller.json', {
      secrets_key_file: 'secrets/key',
      tokens: [{ name: 'ops', token_file: 'secrets/admin', role: 'admin' }],
      registration_tokens: [{ token_file: join(dir, 'etc/secrets/reg'), groups: ['web'] }, 'inline-reg-token'],
    });
    const cfg = loadControllerConfig({ file, env: {}, cwd: dir });
    expect(cfg.secrets_key).toBe(KEY);
    expect(cfg.tokens).toEqual([{ name: 'ops', token: ADMIN, role: 'admin', groups: [] }]);
    expect(cfg.registration_tokens).toEqual([{ name: '', token: 'reg-token-a', groups: ['web'] }, { name: '', token: 'inline-reg-token', groups: [] }]);
  });

  it('reads GRID_ADMIN_TOKEN_FILE, GRID_REGISTRATION_TOKEN_FILE and GRID_SECRETS_KEY_FILE relative to the working directory', () => {
    write('etc/secrets/admin', ADMIN);
    write('etc/secrets/reg', 'reg-token-env\n');
    write('etc/secrets/key', KEY);
    const cfg = loadControllerConfig({
      env: { GRID_ADMIN_TOKEN_FILE: 'etc/secrets/admin', GRID_REGISTRATION_TOKEN_FILE: 'etc/secrets/reg', GRID_SECRETS_KEY_FILE: 'etc/secrets/key' },
      cwd: dir,
    });
    expect(cfg.tokens).toEqual([{ name: 'env-admin', token: ADMIN, role: 'admin', groups: [] }]);
    expect(cfg.registration_tokens).toEqual([{ token: 'reg-token-env', groups: [] }]);
    expect(cfg.secrets_key).toBe(KEY);
  });

  it('refuses a value and its _file together, naming both keys', () => {
    write('etc/secrets/admin', ADMIN);
    const both = write('both.json', { tokens: [{ name: 'ops', token: ADMIN, token_file: 'etc/secrets/admin', role: 'admin' }] });
    expect(messageOf(() => loadControllerConfig({ file: both, env: {}, cwd: dir }))).toBe(
      'config tokens[0].token: given together with tokens[0].token_file; give one or the other',
    );
    const key = write('key.json', { secrets_key: KEY, secrets_key_file: 'k' });
    expect(messageOf(() => loadControllerConfig({ file: key, env: {}, cwd: dir }))).toBe('config secrets_key: given together with secrets_key_file; give one or the other');
    expect(messageOf(() => loadControllerConfig({ env: { GRID_ADMIN_TOKEN: ADMIN, GRID_ADMIN_TOKEN_FILE: 'etc/secrets/admin' }, cwd: dir }))).toBe(
      'config GRID_ADMIN_TOKEN: given together with GRID_ADMIN_TOKEN_FILE; give one or the other',
    );
  });

  it('names the key and the path of a missing, unreadable or empty file', () => {
    const missing = write('missing.json', { registration_tokens: [{ token_file: 'nope' }] });
    expect(messageOf(() => loadControllerConfig({ file: missing, env: {}, cwd: dir }))).toBe(
      `config registration_tokens[0].token_file: cannot read ${join(dir, 'nope')}: file not found`,
    );
    write('empty', '\n');
    expect(messageOf(() => loadControllerConfig({ env: { GRID_REGISTRATION_TOKEN_FILE: 'empty' }, cwd: dir }))).toBe(
      `config GRID_REGISTRATION_TOKEN_FILE: ${join(dir, 'empty')} is empty; it must hold the secret itself`,
    );
    const notPath = write('num.json', { secrets_key_file: 3 });
    expect(messageOf(() => loadControllerConfig({ file: notPath, env: {}, cwd: dir }))).toBe('config secrets_key_file: 3 must be the path of a file holding the secret');
    if (process.getuid?.() !== 0) {
      chmodSync(write('locked', ADMIN), 0o000);
      expect(messageOf(() => loadControllerConfig({ env: { GRID_ADMIN_TOKEN_FILE: 'locked' }, cwd: dir }))).toBe(
        `config GRID_ADMIN_TOKEN_FILE: cannot read ${join(dir, 'locked')}: permission denied`,
      );
    }
  });

  it('applies the key\'s own rules to the value read', () => {
    write('short', 'short\n');
    const file = write('c.json', { tokens: [{ name: 'ops', token_file: 'short', role: 'admin' }] });
    expect(messageOf(() => loadControllerConfig({ file, env: {}, cwd: dir }))).toBe('config tokens[0].token: must be at least 16 characters long (got 5)');
  });
});

describe('executor', () => {
  it('reads registration_token_file (relative to the config file) and GRID_REGISTRATION_TOKEN_FILE', () => {
    write('etc/secrets/reg', 'reg-from-file\n');
    const file = write('etc/executor.json', { registration_token_file: 'secrets/reg' });
    expect(loadExecutorConfig({ file, env: {}, cwd: dir }).registration_token).toBe('reg-from-file');
    write('reg-env', 'reg-from-env');
    expect(loadExecutorConfig({ env: { GRID_REGISTRATION_TOKEN_FILE: 'reg-env' }, cwd: dir }).registration_token).toBe('reg-from-env');
    // The environment wins over the file, as for every key.
    expect(loadExecutorConfig({ file, env: { GRID_REGISTRATION_TOKEN_FILE: 'reg-env' }, cwd: dir }).registration_token).toBe('reg-from-env');
  });

  it('refuses both forms and names a missing file', () => {
    const both = write('both.json', { registration_token: 'x', registration_token_file: 'y' });
    expect(messageOf(() => loadExecutorConfig({ file: both, env: {}, cwd: dir }))).toBe(
      'config registration_token: given together with registration_token_file; give one or the other',
    );
    expect(messageOf(() => loadExecutorConfig({ env: { GRID_REGISTRATION_TOKEN: 'x', GRID_REGISTRATION_TOKEN_FILE: 'y' }, cwd: dir }))).toBe(
      'config GRID_REGISTRATION_TOKEN: given together with GRID_REGISTRATION_TOKEN_FILE; give one or the other',
    );
    expect(messageOf(() => loadExecutorConfig({ env: { GRID_REGISTRATION_TOKEN_FILE: '/nonexistent/grid-token' }, cwd: dir }))).toBe(
      'config GRID_REGISTRATION_TOKEN_FILE: cannot read /nonexistent/grid-token: file not found',
    );
  });
});

describe('grid-cli', () => {
  it('reads token_file (relative to the config file) and GRID_TOKEN_FILE', () => {
    write('etc/secrets/tok', 'client-token\n');
    const file = write('etc/client.json', { controller: 'grid:7070', token_file: 'secrets/tok' });
    expect(loadClientConfig({ file, env: {}, cwd: dir }).token).toBe('client-token');
    write('tok-env', 'env-token\n');
    expect(loadClientConfig({ env: { GRID_TOKEN_FILE: 'tok-env' }, cwd: dir }).token).toBe('env-token');
    expect(messageOf(() => loadClientConfig({ env: { GRID_TOKEN: 'a', GRID_TOKEN_FILE: 'tok-env' }, cwd: dir }))).toBe(
      'config GRID_TOKEN: given together with GRID_TOKEN_FILE; give one or the other',
    );
    const both = write('both.json', { token: 'a', token_file: 'tok-env' });
    expect(messageOf(() => loadClientConfig({ file: both, env: {}, cwd: dir }))).toBe('config token: given together with token_file; give one or the other');
  });

  it('config set keeps token_file: a new controller is saved, an inline token is refused', () => {
    write('tok', 'client-token\n');
    const file = write('client.json', { token_file: 'tok' });
    saveClientConfig(file, { controller: 'other:7070' });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ token_file: 'tok', controller: 'other:7070' });
    expect(messageOf(() => saveClientConfig(file, { token: 'new-token' }))).toBe(
      `config token: ${file} reads its token from token_file (tok); write the new token into that file, or remove token_file first`,
    );
  });
});
