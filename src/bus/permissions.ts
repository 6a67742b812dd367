// What one executor's NATS user may do, written into its user JWT so that nats-server enforces
// it: pull and ack its own consumers, publish events and logs under its own id, hear its own
// cancellations and the replies to its own requests. Everything else is denied: other
// executors' subjects, every stream/consumer/KV administration API, the job subjects themselves.
// Files and serialize locks go through the controller (GetTaskFile, AcquireLock…), per task, so
// no object store or KV access is given.

import type { UserPermissions } from './authority.js';
import { STREAMS, subjects } from './subjects.js';

/** The inbox prefix of an executor's connection: replies to it are the only other thing it hears. */
export function executorInboxPrefix(executorId: string): string {
  return `_INBOX_${executorId}`;
}

export function executorPermissions(e: { id: string; consumers: string[] }): UserPermissions {
  const pub = [
    subjects.event('*', e.id),
    subjects.log('*', e.id),
    ...e.consumers.flatMap((c) => [
      `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.jobs}.${c}`,
      `$JS.API.CONSUMER.INFO.${STREAMS.jobs}.${c}`,
      `$JS.ACK.${STREAMS.jobs}.${c}.>`,
    ]),
  ];
  return {
    pub: { allow: pub },
    sub: { allow: [`${executorInboxPrefix(e.id)}.>`, subjects.cancel(e.id)] },
  };
}
