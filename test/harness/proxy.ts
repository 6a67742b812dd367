// A TCP proxy that keeps every byte a client sends, to show what an eavesdropper on the link reads.

import { createServer, connect as tcpConnect, type Server } from 'node:net';

export interface RecordingProxy {
  port: number;
  /** What clients sent so far, as latin1 text (any byte sequence survives). */
  seen(): string;
  close(): void;
}

/** A proxy on a free loopback port to `127.0.0.1:port`. */
export async function recordingProxy(port: number): Promise<RecordingProxy> {
  const chunks: Buffer[] = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(port, '127.0.0.1');
    client.on('data', (b: Buffer) => chunks.push(b));
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    seen: () => Buffer.concat(chunks).toString('latin1'),
    close: () => server.close(),
  };
}
