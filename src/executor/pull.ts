// The pull loops: one per JetStream consumer of this executor (its own and its pools'), each
// taking a free task slot before it asks for a message. One message per pull while the consumer
// is idle; while the last pull came back full (work is waiting), as many as there are free
// slots, so one pull serves several tasks. Draining stops the loops and hands back what comes.
// A pool's consumer takes only so many waiting pulls (POOL_MAX_WAITING); a member refused one
// parks until the controller nudges the pool (a job was sent to it) or PARK_MS has passed.

import { setTimeout as delay } from 'node:timers/promises';
import { JetStreamError, type Consumer, type ConsumerMessages, type JetStreamClient, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { subjects, STREAMS } from '../bus/subjects.js';
import type { Logger } from '../util/log.js';
import type { Slots } from './slots.js';

/** Most messages one pull asks for when work is waiting. */
const MAX_PULL_BATCH = 16;
/**
 * How long an idle pull waits for a message. A waiting pull costs the server little, but each
 * one that expires is a 408 answer and a new request, and nats.js asks for an idle heartbeat
 * every half of it. With 5 s, 10,000 idle executors (a pull each on their own consumer and on
 * the pool's) made 4,000 requests and 8,000 heartbeats a second, and nats-server 2.9 walks a
 * consumer's whole list of waiting pulls at each expiry and heartbeat: the pool consumer's
 * 10,000 kept a core busy. A pull lost with the connection is asked for again on reconnect.
 */
export const PULL_EXPIRES_MS = 30_000;
/**
 * How long stop() waits for pulls already asked for to expire, so that an executor stops as soon
 * as it did with 5 s pulls. A pull still open then is closed: a job the server sends to it
 * afterwards is offered again once its ack_wait (JOB_ACK_WAIT_MS) has passed, a delay, not a loss.
 */
const STOP_WAIT_MS = 5_000;
/**
 * How long a member refused a waiting pull on its pool stays parked without a nudge, at most (a
 * random time between half this and this, so that a fleet does not ask again all at once). It
 * bounds how long a job whose nudge was lost waits while every pull that waits is taken up;
 * a redelivered job goes to the pulls that do wait, which need no nudge.
 */
export const PARK_MS = 120_000;

/** Queue group of the members parked on a pool: each nudge wakes one of them. */
const PARKED_QUEUE = 'parked';

export class Puller {
  private readonly fetches = new Set<ConsumerMessages>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopPulling = new AbortController();
  private stopping = false;

  constructor(
    private readonly o: {
      js: JetStreamClient;
      /** Where pool nudges are heard (subjects.poolNudge). */
      nc: NatsConnection;
      slots: Slots;
      log: Logger;
      /** How long one pull waits for a message (ms, at least 1000). */
      expiresMs: number;
      workingIntervalMs: number;
      /** Handles a message that holds a slot; must release the slot when done with it. */
      onMessage: (msg: JsMsg) => void;
    },
  ) {}

  start(consumers: string[]): void {
    for (const name of consumers) this.loops.push(this.loop(name));
  }

  /** Stops asking; waits for pulls already asked for to expire (or a bound), then closes them. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.stopPulling.abort();
    // Pulls already asked for are left to expire, for up to STOP_WAIT_MS (a pull closed early can
    // leave the server sending a message to nobody until ack_wait); whatever they bring is handed back.
    const timer = new AbortController();
    await Promise.race([Promise.allSettled(this.loops), delay(Math.min(this.o.expiresMs, STOP_WAIT_MS) + 2000, undefined, { signal: timer.signal }).catch(() => {})]);
    timer.abort();
    for (const f of this.fetches) void f.close().catch(() => {});
  }

  private async loop(name: string): Promise<void> {
    let consumer: Consumer | undefined;
    let failing = false;
    let backlog = false;
    while (!this.stopping) {
      if (!(await this.o.slots.waitFree())) break;
      try {
        consumer ??= await this.o.js.consumers.get(STREAMS.jobs, name);
        const want: number = backlog ? Math.max(1, Math.min(this.o.slots.available, MAX_PULL_BATCH)) : 1;
        const iter = await consumer.fetch({ max_messages: want, expires: this.o.expiresMs });
        this.fetches.add(iter);
        let got = 0;
        try {
          for await (const msg of iter) {
            got++;
            if (failing) this.o.log.info('pulling work again', { consumer: name });
            failing = false;
            await this.take(msg);
          }
        } finally {
          this.fetches.delete(iter);
        }
        backlog = got === want;
      } catch (err) {
        if (maxWaitingExceeded(err)) {
          // Enough members of the pool wait on it already: not a failure, a turn to wait.
          await this.park(name);
          continue;
        }
        consumer = undefined;
        if (!this.stopping) {
          if (!failing) this.o.log.warn('cannot pull work; retrying', { consumer: name, error: (err as Error).message });
          failing = true;
        }
        await delay(2000, undefined, { signal: this.stopPulling.signal }).catch(() => {});
      }
    }
  }

  /**
   * Waits to be nudged on pool consumer `name` (one of the parked members hears each nudge), or
   * for PARK_MS at most, or for stop(). A nudge lost meanwhile costs at most that wait; a
   * subscription NATS refuses (an executor user minted before nudges) leaves only the timer.
   */
  private async park(name: string): Promise<void> {
    if (this.stopping) return;
    this.o.log.debug('pool has enough pulls waiting; parked until it is nudged', { consumer: name });
    await new Promise<void>((resolve) => {
      const signal = this.stopPulling.signal;
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (!sub.isClosed()) sub.unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, PARK_MS * (0.5 + Math.random() / 2));
      signal.addEventListener('abort', done);
      const sub = this.o.nc.subscribe(subjects.poolNudge(name), { queue: PARKED_QUEUE, max: 1, callback: (err) => void (err ? undefined : done()) });
    });
  }

  /** Hands a pulled message on once it has a slot. */
  private async take(msg: JsMsg): Promise<void> {
    // Another loop may have taken the last free slot meanwhile: keep the message alive until a
    // slot is ours (at most one pull's worth of messages per consumer waits like this).
    const keepAlive = setInterval(() => msg.working(), this.o.workingIntervalMs);
    const got = await this.o.slots.acquire().finally(() => clearInterval(keepAlive));
    if (!got || this.stopping) {
      if (got) this.o.slots.release();
      msg.nak(); // taken just as we stopped: hand it straight back
      return;
    }
    this.o.onMessage(msg);
  }
}

/** The server refused a pull because the consumer has as many waiting as it takes (a 409). */
function maxWaitingExceeded(err: unknown): boolean {
  return err instanceof JetStreamError && (err as { code?: number }).code === 409 && /exceeded maxwaiting/i.test(err.message);
}
