// GRID's certificate authority and the rules for executors' client certificates, without servers.

import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExecutorCertificates } from '../../src/controller/executor-certs.js';
import type { ExecutorRecord } from '../../src/domain/executor.js';
import { UnauthenticatedError, ValidationError } from '../../src/errors.js';
import { CertificateAuthority, describe as describeCert, ensureServerFiles, newClientKey } from '../../src/tls/ca.js';
import { tlsFailureHint } from '../../src/tls/grpc.js';
import { serverNames } from '../../src/tls/setup.js';

const dir = mkdtempSync(join(tmpdir(), 'grid-tls-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('certificate authority', () => {
  it('is made once, with its key 0600, and loaded again from its files', async () => {
    const first = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    expect(first.created).toBe(true);
    expect(statSync(first.keyFile).mode & 0o777).toBe(0o600);
    const again = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    expect(again.created).toBe(false);
    expect(again.ca.certPem).toBe(first.ca.certPem);
    const ca = new X509Certificate(first.ca.certPem);
    expect(ca.ca).toBe(true);
  });

  it('issues a server certificate for its names, and a client certificate for a public key it never saw the private half of', async () => {
    const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const caCert = new X509Certificate(ca.certPem);
    const server = await ca.issueServer('grid controller', { dns: ['localhost', 'grid.example'], ips: ['127.0.0.1'] }, 30);
    const s = new X509Certificate(server.certPem);
    expect(s.verify(caCert.publicKey)).toBe(true);
    expect(s.checkHost('grid.example')).toBe('grid.example');
    expect(s.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(s.checkHost('evil.example')).toBeUndefined();

    const key = await newClientKey();
    const client = await ca.issueClient('01EXECUTOR', key.publicKeyPem, 30);
    const c = new X509Certificate(client.certPem);
    expect(c.verify(caCert.publicKey)).toBe(true);
    expect(c.subject).toBe('CN=01EXECUTOR');
    expect(c.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
    expect(c.publicKey.export({ type: 'spki', format: 'pem' })).toBe(key.publicKeyPem);
    expect(client.serial).toBe(c.serialNumber.toLowerCase());
    expect(Math.round((client.notAfterMs - Date.now()) / 86_400_000)).toBe(30);

    await expect(ca.issueClient('x', 'not a key', 30)).rejects.toThrow(ValidationError);
  });

  it('keeps server files that are still good, and issues new ones when the names change', async () => {
    const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const names = { dns: ['localhost'], ips: ['127.0.0.1'] };
    const a = await ensureServerFiles(ca, join(dir, 'srv'), 'x', names, 365);
    expect(a.issued).toBe(true);
    expect(statSync(a.keyFile).mode & 0o777).toBe(0o600);
    const b = await ensureServerFiles(ca, join(dir, 'srv'), 'x', names, 365);
    expect(b.issued).toBe(false);
    const before = readFileSync(a.certFile, 'utf8');
    const c = await ensureServerFiles(ca, join(dir, 'srv'), 'x', { dns: ['localhost', 'grid.example'], ips: ['127.0.0.1'] }, 365);
    expect(c.issued).toBe(true);
    expect(readFileSync(c.certFile, 'utf8')).not.toBe(before);
    // A CA made anew (another data dir) does not accept the old files either.
    const other = await CertificateAuthority.loadOrCreate(join(dir, 'ca2'));
    expect((await ensureServerFiles(other.ca, join(dir, 'srv'), 'x', names, 365)).issued).toBe(true);
  });

  it('puts loopback, this host and the listen address on a certificate it issues itself', () => {
    const n = serverNames('10.1.2.3:7070', []);
    expect(n.ips).toEqual(expect.arrayContaining(['127.0.0.1', '::1', '10.1.2.3']));
    expect(n.dns).toContain('localhost');
    expect(serverNames('0.0.0.0:7070', []).ips).not.toContain('0.0.0.0');
    expect(serverNames(['0.0.0.0:7070', '[2001:db8::5]:7080'], []).ips).toEqual(expect.arrayContaining(['127.0.0.1', '2001:db8::5']));
    expect(serverNames(['10.1.2.3:7070', ''], []).ips).toContain('10.1.2.3');
    expect(serverNames('x:1', ['grid.example', '192.0.2.1'])).toEqual({ dns: ['grid.example'], ips: ['192.0.2.1'] });
  });
});

describe('executor client certificates', () => {
  const record = (over: Partial<ExecutorRecord> = {}): ExecutorRecord => ({
    id: '01EXEC', name: 'web-1', groups: [], labels: {}, runners: ['host'], concurrency: 1, version: '', state: 'ACTIVE',
    registered_at_ms: 0, last_seen_at_ms: 0, state_changed_at_ms: 0, ping_interval_seconds: 10, secret_hash: '', lease_id: '', ...over,
  });

  it('accepts only the current certificate, or the previous one until it expires', async () => {
    let now = Date.now();
    const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const certs = new ExecutorCertificates(ca, 30, () => now);
    const k1 = await newClientKey();
    const first = await certs.issue('01EXEC', k1.publicKeyPem);
    const c1 = describeCert(first.certPem);
    const peer1 = { commonName: '01EXEC', serial: c1.serial, notAfterMs: c1.notAfterMs };
    const rec1 = record(first.fields);
    expect(() => certs.check(rec1, peer1)).not.toThrow();
    expect(() => certs.check(rec1, undefined)).toThrow(UnauthenticatedError);
    expect(() => certs.check(rec1, { ...peer1, commonName: '01OTHER' })).toThrow(/issued to 01OTHER, not to this executor/);

    const second = await certs.issue('01EXEC', (await newClientKey()).publicKeyPem, rec1.tls_cert);
    const rec2 = record(second.fields);
    expect(rec2.tls_prev_cert).toEqual(rec1.tls_cert);
    expect(() => certs.check(rec2, peer1)).not.toThrow();
    now = c1.notAfterMs + 1;
    expect(() => certs.check(rec2, peer1)).toThrow(/no longer valid/);
    await expect(certs.issue('01EXEC', undefined)).rejects.toThrow(/tls_public_key: missing/);
  });
});

describe('TLS failures as one line', () => {
  it('names what to configure for a wrong CA, a plaintext client and a plaintext server', () => {
    expect(tlsFailureHint('No connection established. Last error: self-signed certificate in certificate chain', { caPem: 'x' })).toMatch(/not signed by the CA in ca_file; set ca_file/);
    expect(tlsFailureHint('No connection established. Last error: unable to verify the first certificate', {})).toMatch(/system's CAs/);
    expect(tlsFailureHint('No connection established. Last error: Failed to connect', { plaintext: true })).toMatch(/probably serves TLS/);
    expect(tlsFailureHint('Error: connect ECONNREFUSED 127.0.0.1:1', { plaintext: true })).toBeUndefined();
    expect(tlsFailureHint('write EPROTO ... wrong version number', {})).toMatch(/does not speak TLS/);
  });
});

describe('the executor renews its certificate', () => {
  it('after two thirds of its life, with a new key, saving it and switching the client over', async () => {
    const { ca } = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const k1 = await newClientKey();
    const first = await ca.issueClient('01EXEC', k1.publicKeyPem, 30);
    const identity = { executor_id: '01EXEC', executor_secret: 's', name: 'web-1', controller: 'x:1', nats_servers: [], job_consumer: '', pool_consumers: [], ping_deadline_seconds: 30, registered_at_ms: 0, tls_cert: first.certPem, tls_key: k1.keyPem };
    const asked: string[] = [];
    const rotated: unknown[] = [];
    const client = {
      executors: { renewCertificate: () => undefined },
      call: async (_stub: unknown, _m: unknown, req: { tlsPublicKey: string }) => {
        asked.push(req.tlsPublicKey);
        return { tlsCertificate: (await ca.issueClient('01EXEC', req.tlsPublicKey, 30)).certPem };
      },
      rotate: (tls: unknown) => rotated.push(tls),
    };
    const stateFile = join(dir, 'state.json');
    let now = Date.now();
    const { CertificateRenewer } = await import('../../src/executor/certificate.js');
    const logged: string[] = [];
    const log = { info: (m: string) => logged.push(m), warn: (m: string) => logged.push(m) };
    const renewer = new CertificateRenewer({ client: client as never, cfg: { ca_file: '', plaintext: false, state_file: stateFile }, identity, log: log as never, now: () => now });
    await renewer.check();
    expect(asked).toHaveLength(0); // young: nothing to do
    now += 21 * 86_400_000; // past 2/3 of 30 days
    await renewer.check();
    expect(asked).toHaveLength(1);
    expect(asked[0]).not.toBe(k1.publicKeyPem);
    const saved = JSON.parse(readFileSync(stateFile, 'utf8')) as { tls_cert: string; tls_key: string };
    expect(saved.tls_cert).not.toBe(first.certPem);
    expect(new X509Certificate(saved.tls_cert).publicKey.export({ type: 'spki', format: 'pem' })).toBe(asked[0]);
    expect(statSync(stateFile).mode & 0o777).toBe(0o600);
    expect(rotated).toEqual([{ certPem: saved.tls_cert, keyPem: saved.tls_key }]);
    expect(logged).toContain('client certificate renewed');
  });
});
