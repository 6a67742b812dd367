// Polls until a probe answers (anything truthy, which is returned) or the time is up, for tests
// that wait on something another process or a watch does in its own time.

export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  o: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const until = Date.now() + (o.timeoutMs ?? 5_000);
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, o.everyMs ?? 20));
  }
}
