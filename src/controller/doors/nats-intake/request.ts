// Reading one intake request: the API's ExecuteRequest in JSON (camelCase or snake_case field
// names, as the API's JSON form takes them), refused with the field named when it is not one,
// and the inbox its answer may go to.

import { ExecuteRequest } from '../../../gen/grid/v1/controller.js';
import { ValidationError } from '../../../errors.js';
import { didYouMean } from '../../../util/suggest.js';

const CAMEL = Object.keys(ExecuteRequest.fromPartial({}));
const FIELDS = new Set(CAMEL.flatMap((k) => [k, k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]));

/**
 * The request in `data`. Without an idempotency key it takes the request's id (its Nats-Msg-Id):
 * a message on the bus may be delivered more than once, and the key is what starts its
 * execution only once. One with neither is refused (a dry run needs none).
 */
export function readRequest(data: Uint8Array, requestId: string): ExecuteRequest {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(data));
  } catch {
    throw new ValidationError('the request is not JSON: send the API\'s ExecuteRequest in its JSON form, e.g. {"job": "hello-world", "args": {"NAME": "ops"}}');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ValidationError('the request must be a JSON object: the API\'s ExecuteRequest, e.g. {"job": "hello-world"}');
  }
  const unknown = Object.keys(raw).filter((k) => !FIELDS.has(k));
  if (unknown.length) {
    throw new ValidationError(unknown.map((k) => ({ path: k, message: `unknown field${didYouMean(k, [...FIELDS])}` })));
  }
  const req = ExecuteRequest.fromJSON(raw);
  if (!req.job) throw new ValidationError([{ path: 'job', message: 'missing: name the job to execute' }]);
  if (!req.idempotencyKey && !req.dryRun) {
    if (!requestId) {
      throw new ValidationError([{
        path: 'idempotency_key',
        message: 'missing, and the request has no Nats-Msg-Id header either: a request on the bus may be delivered more than once, and one of them makes it start its execution only once',
      }]);
    }
    req.idempotencyKey = requestId;
  }
  return req;
}

/**
 * An inbox of a client connection (`_INBOX.…`, or a prefix of its own such as `_INBOX_<key>.…`),
 * without wildcards. The controller answers with its own NATS user's rights, so it answers only
 * there: never on a subject of GRID's own (a job queue, an executor's cancel subject).
 */
export function isInbox(subject: string): boolean {
  return /^_INBOX[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)+$/.test(subject) && subject.length <= 256;
}
