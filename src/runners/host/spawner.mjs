// @ts-check
// The host runner's spawner: a small Node process, started once by the executor, that
// starts tasks on its behalf. fork() copies the page tables of the process that calls it and
// blocks its event loop meanwhile, which for a large executor costs far more than the task
// itself; from this process it costs what it costs from a fresh `node`.
//
// Requests and answers (pid, exit status) travel over the IPC channel (JSON). The task's stdout
// and stderr are unix sockets this process connects to the executor's private listening socket
// (argv[2], in a 0700 directory), each introduced by the one-time token the request named; the
// executor reads the task's output straight from the task, with no copy in here. (Handing
// socket pairs over the IPC channel would also work, but Node sends one handle at a time and
// waits for the receiver's acknowledgement of each: a round trip per stream, in line.)
//
// It is plain JavaScript so that it starts without the rest of GRID (and runs from the source
// tree under the test runner too). It exits when the executor goes away (the channel closes);
// the tasks then left running are the executor's to reap, as after any crash of it.

import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';

const listening = process.argv[2] ?? '';

// Signals sent to the executor's process group (Ctrl-C, `kill -TERM -<pgid>`) are the
// executor's to handle: running tasks still need this process to report their exits while it
// drains.
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) process.on(sig, () => {});
process.on('disconnect', () => process.exit(0));

/**
 * @typedef {{ t: 'spawn', id: number, file: string, args: string[], cwd: string,
 *   env: Record<string, string>, uid?: number, gid?: number, stdout: string, stderr: string }} SpawnRequest
 */

process.on('message', (/** @type {SpawnRequest} */ m) => {
  if (m && m.t === 'spawn') void start(m);
});

/** @param {SpawnRequest} m */
async function start(m) {
  /** @type {import('node:net').Socket[]} */
  let out;
  try {
    out = await Promise.all([connect(m.stdout), connect(m.stderr)]);
  } catch (err) {
    failed(m.id, /** @type {NodeJS.ErrnoException} */ (err));
    return;
  }
  /** @type {import('node:child_process').ChildProcess} */
  let child;
  try {
    child = spawn(m.file, m.args, {
      cwd: m.cwd,
      env: m.env,
      // Own process group (setsid): the executor signals the whole tree as -pid.
      detached: true,
      stdio: ['ignore', out[0], out[1]],
      ...(m.uid !== undefined && m.gid !== undefined ? { uid: m.uid, gid: m.gid } : {}),
    });
  } catch (err) {
    failed(m.id, /** @type {NodeJS.ErrnoException} */ (err));
    return;
  } finally {
    // The task has its own copies now: the executor sees the end of its output when the task's
    // copies close.
    for (const s of out) s.destroy();
  }
  if (child.pid === undefined) {
    // execve failed (ENOENT, EACCES…): reported as an 'error' event, not thrown.
    child.once('error', (err) => failed(m.id, err));
    return;
  }
  send({ t: 'started', id: m.id, pid: child.pid });
  child.once('exit', (code, signal) => send({ t: 'exit', id: m.id, code, signal }));
}

/**
 * A socket to the executor, introduced by `token`; resolves once the introduction has been
 * written, so that nothing the task writes can come before it.
 * @param {string} token
 * @returns {Promise<import('node:net').Socket>}
 */
function connect(token) {
  return new Promise((resolve, reject) => {
    const s = createConnection(listening);
    s.once('error', reject);
    s.once('connect', () => s.write(`${token}\n`, (err) => (err ? reject(err) : resolve(s))));
  });
}

/**
 * @param {number} id
 * @param {NodeJS.ErrnoException} err
 */
function failed(id, err) {
  send({ t: 'error', id, code: err.code ?? '', message: err.message });
}

/** @param {object} message */
function send(message) {
  // The channel is gone only when the executor is: nothing is left to tell.
  if (process.connected) process.send?.(message, undefined, () => {});
}

process.send?.({ t: 'ready' });
