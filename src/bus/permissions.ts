// What one executor's NATS user may do, written into its user JWT so that nats-server enforces
// it: pull and ack its own consumers, publish events and logs under its own id, hear its own
// cancellations and the replies to its own requests. Everything else is denied: other
// executors' subjects, every stream/consumer/KV administration API, the job subjects themselves.
// Files are fetched from the controller over gRPC, per task, so no object store access is given.

import type { UserPermissions } from './authority.js';
import { BUCKETS, STREAMS, subjects } from './subjects.js';

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
    ...lockSubjects(),
  ];
  return {
    pub: { allow: pub },
    sub: { allow: [`${executorInboxPrefix(e.id)}.>`, subjects.cancel(e.id)] },
  };
}

/**
 * Serialized jobs' locks in the grid-locks KV bucket: its data subjects, direct gets and the
 * stream info the client reads on open. Lock names are per job, so they cannot be narrowed to
 * the jobs of one executor in a static JWT.
 */
function lockSubjects(): string[] {
  const stream = `KV_${BUCKETS.locks}`;
  return [
    `$KV.${BUCKETS.locks}.>`,
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    `$JS.API.DIRECT.GET.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    // keys() reads through an ordered (ephemeral) consumer of the lock stream
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
  ];
}
