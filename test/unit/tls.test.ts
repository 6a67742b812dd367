// GRID's certificate authority and the rules for executors' client certificates, without servers.

import { createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, webcrypto, X509Certificate } from 'node:crypto';
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
import { certTemplate, fromTemplate } from '../../src/tls/cert-template.js';
import { EC } from '../../src/tls/keys.js';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const newKeys = () => webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;

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

  it('makes executors\' client certificates from a template: the TBSCertificate the library makes for the same fields, byte for byte', async () => {
    const made = await CertificateAuthority.loadOrCreate(join(dir, 'ca'));
    const caCert = new X509Certificate(made.ca.certPem);
    const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(readFileSync(made.keyFile)).export({ type: 'pkcs8', format: 'der' }), EC, false, ['sign']);
    const key = await newClientKey();
    const spki = createPublicKey(key.publicKeyPem).export({ type: 'spki', format: 'der' });
    const serial = '5a'.padEnd(32, '3c');
    const notBefore = Date.UTC(2026, 11, 6, 20, 0, 7);
    const notAfter = Date.UTC(2027, 0, 5, 20, 0, 7);
    // What the CA puts on an executor's client certificate.
    const extensions = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
      await x509.AuthorityKeyIdentifierExtension.create(new x509.X509Certificate(made.ca.certPem)),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ];
    const library = await x509.X509CertificateGenerator.create({
      serialNumber: serial, subject: 'CN=01EXECUTOR', issuer: caCert.subject, notBefore: new Date(notBefore), notAfter: new Date(notAfter),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, publicKey: await webcrypto.subtle.importKey('spki', spki, EC, true, ['verify']), signingKey: caKey,
      extensions,
    });
    const example = await x509.X509CertificateGenerator.create({
      serialNumber: '01', subject: 'CN=template', issuer: caCert.subject, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' }, publicKey: (await newKeys()).publicKey, signingKey: caKey,
      extensions,
    });
    const template = certTemplate(example.toString('pem'), KeyObject.from(caKey), Date.parse(caCert.validTo));
    const ours = fromTemplate(template, { serialHex: serial, commonName: '01EXECUTOR', spki, notBeforeMs: notBefore, notAfterMs: notAfter });
    const tbs = (der: Buffer) => der.subarray(4, 8 + der.readUInt16BE(6)); // SEQUENCE { SEQUENCE (two length bytes) tbs, ... }
    const libraryDer = Buffer.from(library.rawData);
    expect([libraryDer[1], libraryDer[5], ours.der[1], ours.der[5]]).toEqual([0x82, 0x82, 0x82, 0x82]);
    expect(tbs(ours.der).length).toBeGreaterThan(300);
    expect(tbs(ours.der).equals(tbs(libraryDer))).toBe(true);
    const c = new X509Certificate(ours.der);
    expect([c.verify(caCert.publicKey), c.subject, c.serialNumber.toLowerCase(), Date.parse(c.validTo)]).toEqual([true, 'CN=01EXECUTOR', serial, notAfter]);

    const accented = fromTemplate(template, { serialHex: serial, commonName: 'grid exécuteur', spki, notBeforeMs: notBefore, notAfterMs: notAfter });
    expect(new X509Certificate(accented.der).subject).toBe('CN=grid exécuteur');

    // Past 2049 the times are GeneralizedTime; never past the CA's own end.
    const late = fromTemplate({ ...template, caNotAfterMs: Date.UTC(2060, 0, 1) }, { serialHex: serial, commonName: 'x', spki, notBeforeMs: notBefore, notAfterMs: Date.UTC(2051, 5, 1, 12) });
    expect(Date.parse(new X509Certificate(late.der).validTo)).toBe(Date.UTC(2051, 5, 1, 12));
    const capped = fromTemplate(template, { serialHex: serial, commonName: 'x', spki, notBeforeMs: notBefore, notAfterMs: Date.UTC(2070, 0, 1) });
    expect(capped.notAfterMs).toBe(Math.floor(Date.parse(caCert.validTo) / 1000) * 1000);
    // Only an ECDSA P-256 public key.
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
    expect(() => fromTemplate(template, { serialHex: serial, commonName: 'x', spki: rsa, notBeforeMs: notBefore, notAfterMs: notAfter })).toThrow(/ECDSA P-256/);
    await expect(made.ca.issueClient('x', createPrivateKey(readFileSync(made.keyFile)).export({ type: 'pkcs8', format: 'pem' }) as string, 30)).rejects.toThrow(ValidationError);
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
