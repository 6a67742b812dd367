// grid-cli's side of the NATS intake: --via, where the NATS settings come from (flags over the
// client config, a missing URL named), and the credentials file it writes and reads.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newUserKey } from '../../src/bus/authority.js';
import { natsSubmitOptions, parseVia } from '../../src/cli/commands/executions.js';
import { credsFileText, readCredsFile } from '../../src/client/nats-submit.js';
import type { ClientConfig } from '../../src/config/client.js';
import { ConfigError, ValidationError } from '../../src/errors.js';

const cfg: ClientConfig = {
  controller: '127.0.0.1:7070', token: 'tok', output: 'table', timeout_ms: 15_000, ca_file: '', plaintext: false,
  nats_servers: ['nats://from-config:4222'], nats_creds: '/etc/grid/ops.creds', nats_ca_file: '',
};

describe('execute --via nats', () => {
  it('takes grpc or nats', () => {
    expect(parseVia(undefined)).toBe('grpc');
    expect(parseVia('NATS')).toBe('nats');
    expect(() => parseVia('http')).toThrow(ValidationError);
    expect(() => parseVia('http')).toThrow('--via: "http" must be grpc or nats');
  });

  it('takes the NATS settings from the flags, else the client config, and names a missing URL', () => {
    expect(natsSubmitOptions(cfg, {}, '/home/ops', 30_000)).toEqual({
      servers: ['nats://from-config:4222'], credsFile: '/etc/grid/ops.creds', caFile: '', token: 'tok', waitMs: 30_000,
    });
    expect(natsSubmitOptions(cfg, { natsServers: 'nats://a:1, nats://b:2', natsCreds: 'me.creds', natsCaFile: 'ca.pem' }, '/home/ops', 5_000)).toMatchObject({
      servers: ['nats://a:1', 'nats://b:2'], credsFile: '/home/ops/me.creds', caFile: '/home/ops/ca.pem', waitMs: 5_000,
    });
    const missing = (() => {
      try {
        natsSubmitOptions({ ...cfg, nats_servers: [] }, {}, '/home/ops', 1);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('no error');
    })();
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing.key).toBe('nats_servers');
    expect(missing.message).toMatch(/--nats-servers .*GRID_NATS_SERVERS.*grid-cli nats-credentials/);
  });

  it('reads back the credentials file it writes, and names nats_creds when a file is not one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-cli-nats-'));
    const key = newUserKey();
    const file = join(dir, 'ops.creds');
    writeFileSync(file, credsFileText('eyJhbGciOi.example.jwt', key.seed));
    expect(readCredsFile(file)).toEqual({ jwt: 'eyJhbGciOi.example.jwt', seed: key.seed });
    writeFileSync(join(dir, 'bad.creds'), 'hello');
    expect(() => readCredsFile(join(dir, 'bad.creds'))).toThrow(/^config nats_creds: .*bad\.creds is not a NATS credentials file/);
    expect(() => readCredsFile(join(dir, 'none.creds'))).toThrow(/^config nats_creds: cannot read .*none\.creds: ENOENT/);
  });
});
