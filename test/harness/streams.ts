// Reading JetStream back in tests.

import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';

/** Every message on `filter` in `stream` so far, through an ordered consumer. */
export async function readAll(js: JetStreamClient, stream: string, filter: string): Promise<JsMsg[]> {
  const c = await js.consumers.get(stream, { filter_subjects: filter });
  if ((await c.info()).num_pending === 0) return [];
  const out: JsMsg[] = [];
  const it = await c.consume();
  for await (const m of it) {
    out.push(m);
    if (m.info.pending === 0) break;
  }
  await it.close();
  return out;
}
