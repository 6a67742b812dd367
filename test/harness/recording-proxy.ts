// A TCP proxy that keeps every byte crossing it in both directions: what a man in the middle
// on the network would see. Security tests put it between two GRID components. For HTTP/2
// (gRPC) it can also decode the header blocks it saw, since HPACK usually Huffman-codes a
// header's value (a bearer token is then not in the bytes as written, but still readable).

import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface Hpack {
  decompressor: { create(o: { table: { size: number } }): { write(b: Buffer): void; execute(): void; read(): { name: string; value: string } | null } };
}

export interface RecordingProxy {
  /** host:port to connect to instead of the upstream. */
  address: string;
  port: number;
  /** Everything seen so far, both directions, as latin1 (byte-for-byte searchable). */
  seen(): string;
  /**
   * The HTTP/2 headers in what was seen, decoded per connection and direction, as `name: value`
   * lines; nothing for bytes that are not cleartext HTTP/2 (TLS, say).
   */
  http2Headers(): string[];
  close(): Promise<void>;
}

interface Recorded {
  toUpstream: Buffer[];
  fromUpstream: Buffer[];
}

export async function recordingProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<RecordingProxy> {
  const all: Buffer[] = [];
  const connections: Recorded[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(upstreamPort, upstreamHost);
    const rec: Recorded = { toUpstream: [], fromUpstream: [] };
    connections.push(rec);
    sockets.add(client).add(upstream);
    client.on('data', (b: Buffer) => (all.push(b), rec.toUpstream.push(b)));
    upstream.on('data', (b: Buffer) => (all.push(b), rec.fromUpstream.push(b)));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    port,
    seen: () => Buffer.concat(all).toString('latin1'),
    http2Headers: () => connections.flatMap((c) => [...decodeHeaders(Buffer.concat(c.toUpstream), true), ...decodeHeaders(Buffer.concat(c.fromUpstream), false)]),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HEADERS = 0x1;
const CONTINUATION = 0x9;

/** The header fields of one direction of a cleartext HTTP/2 connection (RFC 7540 §4, §6.2). */
function decodeHeaders(bytes: Buffer, fromClient: boolean): string[] {
  let at = 0;
  if (fromClient) {
    if (!bytes.subarray(0, PREFACE.length).equals(PREFACE)) return [];
    at = PREFACE.length;
  }
  const hpack = require('hpack.js') as Hpack;
  const decoder = hpack.decompressor.create({ table: { size: 4096 } });
  const out: string[] = [];
  let block: Buffer[] = [];
  while (at + 9 <= bytes.length) {
    const length = bytes.readUIntBE(at, 3);
    const type = bytes[at + 3]!;
    const flags = bytes[at + 4]!;
    let payload = bytes.subarray(at + 9, at + 9 + length);
    at += 9 + length;
    if (type !== HEADERS && type !== CONTINUATION) continue;
    if (type === HEADERS) {
      let pad = 0;
      if (flags & 0x8) ((pad = payload[0]!), (payload = payload.subarray(1)));
      if (flags & 0x20) payload = payload.subarray(5);
      payload = payload.subarray(0, payload.length - pad);
    }
    block.push(payload);
    if (flags & 0x4) {
      try {
        decoder.write(Buffer.concat(block));
        decoder.execute();
        for (let h = decoder.read(); h; h = decoder.read()) out.push(`${h.name}: ${h.value}`);
      } catch {
        return out; // not HTTP/2 after all
      }
      block = [];
    }
  }
  return out;
}
