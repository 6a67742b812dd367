// The test harness's one exit hook: when a test process ends before its cleanup ran (it exits,
// is signalled, or its runner dies), every registered cleanup runs synchronously.

const cleanups = new Set<() => void>();
let hooked = false;

function runAll(): void {
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // keep going: the others must run too
    }
  }
}

/** Registers a synchronous cleanup to run if the process ends early (once per cleanup). */
export function atExit(fn: () => void): void {
  cleanups.add(fn);
  if (hooked) return;
  hooked = true;
  // 'exit' handlers must be synchronous, hence SIGKILL and rmSync rather than a graceful stop.
  process.once('exit', runAll);
  // A forked test worker whose runner was killed is orphaned and may idle on; losing the IPC
  // channel to the runner is the sign that nobody will call stop().
  if (process.connected) process.once('disconnect', runAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      runAll();
      // Our listener suppressed the default action; die by the signal unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}
