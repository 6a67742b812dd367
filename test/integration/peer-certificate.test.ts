// A call's client certificate over real gRPC TLS (grpc-js server and client, openssl-made
// certificates): read from the TLS socket once per connection, and never one connection's for
// another's calls.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import { Server, ServerCredentials, type ServerUnaryCall, type sendUnaryData, Client, type ChannelCredentials } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { channelCredentials, peerCertificate, serverCredentials } from '../../src/tls/grpc.js';
import { issueClientCert, issueServerCert, makeCa, type TestCa } from '../harness/certs.js';

const METHOD = '/test.Peer/Who';
const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };

let dir: string;
let ca: TestCa;
let server: Server;
let port: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'grid-peer-cert-'));
  ca = makeCa(dir, 'peer');
  const s = issueServerCert(ca);
  server = new Server();
  server.register(
    METHOD,
    (call: ServerUnaryCall<Buffer, Buffer>, done: sendUnaryData<Buffer>) => done(null, Buffer.from(peerCertificate(call)?.commonName ?? '(none)')),
    raw.serialize,
    raw.deserialize,
    'unary',
  );
  const creds: ServerCredentials = serverCredentials({ certPem: readFileSync(s.cert, 'utf8'), keyPem: readFileSync(s.key, 'utf8'), clientCaPem: readFileSync(ca.caFile, 'utf8') });
  port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
});

afterAll(async () => {
  await new Promise<void>((r) => server?.tryShutdown(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

function clientAs(cn: string | undefined): Client {
  const caPem = readFileSync(ca.caFile, 'utf8');
  let creds: ChannelCredentials;
  if (cn) {
    const c = issueClientCert(ca, cn);
    creds = channelCredentials({ caPem, certPem: readFileSync(c.cert, 'utf8'), keyPem: readFileSync(c.key, 'utf8') });
  } else creds = channelCredentials({ caPem });
  return new Client(`127.0.0.1:${port}`, creds);
}

function who(c: Client): Promise<string> {
  return new Promise((resolve, reject) =>
    c.makeUnaryRequest(METHOD, raw.serialize, raw.deserialize, Buffer.alloc(0), (err, res) => (err ? reject(err) : resolve(res!.toString()))),
  );
}

describe('peerCertificate', () => {
  it('reads a connection\'s certificate from its socket once, and tells connections apart', async () => {
    const read = vi.spyOn(TLSSocket.prototype, 'getPeerCertificate');
    const a = clientAs('executor-a');
    const b = clientAs('executor-b');
    const none = clientAs(undefined);
    try {
      expect(await who(a)).toBe('executor-a');
      const afterFirst = read.mock.calls.length;
      expect(afterFirst).toBeGreaterThan(0);
      for (let i = 0; i < 20; i++) expect(await who(a)).toBe('executor-a');
      // Twenty more calls on the same connection: the socket was not asked again.
      expect(read.mock.calls.length).toBe(afterFirst);
      // Other connections: each its own certificate, or none.
      expect(await Promise.all([who(b), who(none), who(a), who(b)])).toEqual(['executor-b', '(none)', 'executor-a', 'executor-b']);
      expect(await who(none)).toBe('(none)');
    } finally {
      read.mockRestore();
      for (const c of [a, b, none]) c.close();
    }
  });
});
