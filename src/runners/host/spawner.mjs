// @ts-check
// The host runner's spawner: a small Node process, started once by the executor, that
// starts tasks on its behalf. fork() copies the page tables of the process that calls it and
// blocks its event loop meanwhile, which for a large executor costs far more than the task
// itself; from this process it costs what it costs from a fresh `node`.
//
// Requests and answers travel over the IPC channel (JSON). The task's stdout and stderr are
// socket pairs made by libuv; their reading ends are handed to the executor as handles
// (SCM_RIGHTS), so the executor reads the task's output straight from the task, with no copy
// in here. This process only reports the pid and, later, the exit status.
//
// It is plain JavaScript so that it starts without the rest of GRID (and runs from the source
// tree under the test runner too). It exits when the executor goes away (the channel closes);
// the tasks then left running are the executor's to reap, as after any crash of it.

import { spawn } from 'node:child_process';

// Signals sent to the executor's process group (Ctrl-C, `kill -TERM -<pgid>`) are the
// executor's to handle: running tasks still need this process to report their exits while it
// drains.
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM', 'SIGHUP'])) process.on(sig, () => {});
process.on('disconnect', () => process.exit(0));

/**
 * @typedef {{ t: 'spawn', id: number, file: string, args: string[], cwd: string,
 *   env: Record<string, string>, uid?: number, gid?: number }} SpawnRequest
 */

process.on('message', (/** @type {SpawnRequest} */ m) => {
  if (m && m.t === 'spawn') start(m);
});

/** @param {SpawnRequest} m */
function start(m) {
  /** @type {import('node:child_process').ChildProcessByStdio<null, import('node:stream').Readable, import('node:stream').Readable>} */
  let child;
  try {
    child = spawn(m.file, m.args, {
      cwd: m.cwd,
      env: m.env,
      // Own process group (setsid): the executor signals the whole tree as -pid.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(m.uid !== undefined && m.gid !== undefined ? { uid: m.uid, gid: m.gid } : {}),
    });
  } catch (err) {
    failed(m.id, /** @type {NodeJS.ErrnoException} */ (err));
    return;
  }
  if (child.pid === undefined) {
    // execve failed (ENOENT, EACCES…): reported as an 'error' event, not thrown.
    child.once('error', (err) => failed(m.id, err));
    return;
  }
  // A stdio socket starts reading as soon as it is made; nothing may be read here, or it would
  // be lost when the socket is handed over. Until the event loop turns, nothing has been read.
  for (const s of [child.stdout, child.stderr]) {
    const handle = /** @type {{ _handle?: { readStop(): number, reading: boolean } }} */ (/** @type {unknown} */ (s))._handle;
    if (handle) {
      handle.reading = false;
      handle.readStop();
    }
  }
  // Messages keep their order: the exit always comes after both handles.
  // They are sockets (libuv makes stdio pipes with socketpair()), which is what can be handed over.
  send({ t: 'stdout', id: m.id, pid: child.pid }, /** @type {import('node:net').Socket} */ (child.stdout));
  send({ t: 'stderr', id: m.id }, /** @type {import('node:net').Socket} */ (child.stderr));
  child.once('exit', (code, signal) => send({ t: 'exit', id: m.id, code, signal }));
}

/**
 * @param {number} id
 * @param {NodeJS.ErrnoException} err
 */
function failed(id, err) {
  send({ t: 'error', id, code: err.code ?? '', message: err.message });
}

/**
 * @param {object} message
 * @param {import('node:net').Socket} [handle]
 */
function send(message, handle) {
  // The channel is gone only when the executor is: nothing is left to tell.
  if (process.connected) process.send?.(message, handle, () => {});
}

process.send?.({ t: 'ready' });
