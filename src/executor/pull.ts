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
    // Pulls already asked for are left to expire (a pull closed early would leave the server
    // sending a message to nobody until ack_wait); whatever they bring is handed back.
    const timer = new AbortController();
    await Promise.race([Promise.allSettled(this.loops), delay(this.o.expiresMs + 2000, undefined, { signal: timer.signal }).catch(() => {})]);
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
