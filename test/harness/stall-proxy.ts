// A TCP proxy that can hold every byte crossing it and later let them through, closing nothing:
// while it stalls, each side sees a peer that has gone quiet and, once the socket buffers and
// HTTP/2 windows are full, stops sending. Put between a controller and etcd, it makes the
// controller's etcd watches fall behind while etcd moves on (and compacts) without them.

import { createServer, connect as tcpConnect, type Socket } from 'node:net';

export interface StallProxy {
  /** `http://127.0.0.1:<port>`: where to point an etcd client instead of etcd. */
  endpoint: string;
  /** Stops forwarding, both ways, on every connection (new ones are held too). */
  stall(): void;
  /** Stops forwarding on the connections open now only, for good: a peer that stopped reading. New ones flow. */
  stallOpen(): void;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Forwards again, starting with what was held. */
  flow(): void;
  close(): Promise<void>;
}

export async function stallProxy(upstreamPort: number, upstreamHost = '127.0.0.1'): Promise<StallProxy> {
  const pairs = new Set<[Socket, Socket]>();
  /** Connections stalled for good (stallOpen): destroyed only by close(). */
  const held = new Set<[Socket, Socket]>();
  let stalled = false;
  const hold = ([a, b]: [Socket, Socket]): void => {
    a.unpipe(b);
    b.unpipe(a);
    a.pause();
    b.pause();
  };
  const forward = ([a, b]: [Socket, Socket]): void => {
    a.pipe(b);
    b.pipe(a);
  };
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const pair: [Socket, Socket] = [client, tcpConnect(upstreamPort, upstreamHost)];
    pairs.add(pair);
    const end = (): void => {
      pairs.delete(pair);
      for (const s of pair) s.destroy();
    };
    for (const s of pair) s.on('error', end).on('close', end);
    if (stalled) hold(pair);
    else forward(pair);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    stall() {
      stalled = true;
      for (const p of pairs) hold(p);
    },
    stallOpen() {
      for (const p of pairs) {
        hold(p);
        pairs.delete(p);
        held.add(p);
      }
    },
    flow() {
      stalled = false;
      for (const p of pairs) forward(p);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of [...pairs, ...held]) for (const s of p) s.destroy();
        server.close(() => resolve());
      }),
  };
}
