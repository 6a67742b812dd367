// `openssl s_client` against a loopback port, to see the certificate a server presents the way an
// operator would. nats-server 2.9 sends its INFO line in plaintext before the TLS handshake,
// which s_client cannot skip (it has no -starttls for NATS): `natsInfoFirst` puts a relay in
// front that reads that line and then passes the bytes through.

import { execFile } from 'node:child_process';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

export interface SClientOptions {
  caFile: string;
  /** A client certificate and key to present (a server may require one). */
  certFile?: string;
  keyFile?: string;
  natsInfoFirst?: boolean;
}

export interface SClientResult {
  code: number;
  /** s_client's report: the chain (`s:`/`i:` lines), `subject=…`, `Verify return code: …`. */
  output: string;
  /** The plaintext line a NATS server sent before TLS (natsInfoFirst only). */
  natsInfo?: string;
}

export async function sClient(port: number, o: SClientOptions): Promise<SClientResult> {
  const relay = o.natsInfoFirst ? await infoSkippingRelay(port) : undefined;
  try {
    const args = ['s_client', '-connect', `127.0.0.1:${relay?.port ?? port}`, '-CAfile', o.caFile, '-verify_return_error'];
    if (o.certFile) args.push('-cert', o.certFile, '-key', o.keyFile ?? '');
    const { code, output } = await run(args);
    return { code, output, ...(relay ? { natsInfo: relay.info() } : {}) };
  } finally {
    relay?.close();
  }
}

function run(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('openssl', args, { timeout: 10_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}` });
    });
    child.stdin?.end(); // no input: s_client says what it saw and quits
  });
}

async function infoSkippingRelay(port: number): Promise<{ port: number; info: () => string; close: () => void }> {
  let info = '';
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    client.pause();
    const upstream = tcpConnect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    let head = Buffer.alloc(0);
    const onData = (b: Buffer) => {
      head = Buffer.concat([head, b]);
      const end = head.indexOf('\r\n');
      if (end < 0) return;
      upstream.off('data', onData);
      info = head.subarray(0, end).toString('utf8');
      const rest = head.subarray(end + 2);
      if (rest.length > 0) client.write(rest);
      upstream.pipe(client);
      client.pipe(upstream);
      client.resume();
    };
    upstream.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : 0,
    info: () => info,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
