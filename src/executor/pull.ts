// The pull loops: one per JetStream consumer of this executor (its own and its pools'), each
// taking a free task slot before it asks for a message. One message per pull while the consumer
// is idle; while the last pull came back full (work is waiting), as many as there are free
// slots, so one pull serves several tasks. Draining stops the loops and hands back what comes.

import { setTimeout as delay } from 'node:timers/promises';
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { STREAMS } from '../bus/subjects.js';
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

export class Puller {
  private readonly fetches = new Set<ConsumerMessages>();
  private readonly loops: Promise<void>[] = [];
  private readonly stopPulling = new AbortController();
  private stopping = false;

  constructor(
    private readonly o: {
      js: JetStreamClient;
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
        consumer = undefined;
        if (!this.stopping) {
          if (!failing) this.o.log.warn('cannot pull work; retrying', { consumer: name, error: (err as Error).message });
          failing = true;
        }
        await delay(2000, undefined, { signal: this.stopPulling.signal }).catch(() => {});
      }
    }
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
