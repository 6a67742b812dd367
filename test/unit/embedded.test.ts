// Unit tests for the embedded cluster's helpers: binary lookup and free ports.

import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MissingBinaryError } from '../../src/errors.js';
import { findBinary, freePort } from '../../src/embedded/index.js';

describe('findBinary', () => {
  it('names the Debian package when the binary is missing', () => {
    let caught: unknown;
    try {
      findBinary('grid-no-such-binary', 'grid-no-such-package', '/nonexistent');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(MissingBinaryError);
    const err = caught as MissingBinaryError;
    expect(err.binary).toBe('grid-no-such-binary');
    expect(err.debianPackage).toBe('grid-no-such-package');
    expect(err.message).toContain('apt-get install grid-no-such-package');
  });

  it('finds a binary on PATH', () => {
    expect(findBinary('sh', 'dash', '/bin:/usr/bin')).toMatch(/\/sh$/);
  });
});

describe('freePort', () => {
  it('returns a port that can be bound on loopback', async () => {
    const port = await freePort('127.0.0.1');
    expect(port).toBeGreaterThan(0);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port }, resolve);
    });
    expect((server.address() as { port: number }).port).toBe(port);
    await new Promise((resolve) => server.close(resolve));
  });
});
