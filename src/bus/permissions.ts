// What one executor's NATS user may do, written into its user JWT so that nats-server enforces
// it: pull and ack its own consumers, publish events and logs under its own id, hear its own
// cancellations, its groups' fan-out pointers, its pools' nudges and the replies to its own requests. Everything else is denied: other
// executors' subjects, every stream/consumer/KV administration API, the job subjects themselves,
// the request intake (a compromised executor cannot start work elsewhere through it).
// Files and serialize locks go through the controller (GetTaskFile, AcquireLock…), per task, so
// no object store or KV access is given. A submitter's user (a person's or CI's, for the request
// intake) may publish execution requests and hear its own answers, nothing else.

import type { UserPermissions } from './authority.js';
import { consumers, STREAMS, subjects } from './subjects.js';

/** The inbox prefix of an executor's connection: replies to it are the only other thing it hears. */
export function executorInboxPrefix(executorId: string): string {
  return `_INBOX_${executorId}`;
}

export function executorPermissions(e: { id: string; consumers: string[]; groups?: string[] }): UserPermissions {
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
    // Fan-out pointers of its own groups and nudges of its own pools: hear only, never publish
    // (only the controller sends them).
    sub: {
      allow: [
        `${executorInboxPrefix(e.id)}.>`,
        subjects.cancel(e.id),
        ...(e.groups ?? []).map((g) => subjects.fanout(g)),
        ...e.consumers.filter(consumers.isPool).map((c) => subjects.poolNudge(c)),
      ],
    },
  };
}

/**
 * The inbox prefix of a submitter's connection, named by its NATS user key (which the client
 * knows from its own seed): the JetStream acknowledgements and the intake's answers come here.
 */
export function submitterInboxPrefix(userPublicKey: string): string {
  return `_INBOX_${userPublicKey}`;
}

/**
 * A submitter: publish on the intake's subject (a JetStream publish, acknowledged to its inbox)
 * and hear its own inbox. No stream, consumer or KV API: it cannot read the requests of others.
 */
export function submitterPermissions(userPublicKey: string): UserPermissions {
  return {
    pub: { allow: [subjects.submitExecute] },
    sub: { allow: [`${submitterInboxPrefix(userPublicKey)}.>`] },
  };
}
