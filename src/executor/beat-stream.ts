// The executor's end of ExecutorService.Heartbeats: one long-lived stream that carries every
// heartbeat, instead of a call each. Its first message carries the secret (the stream is bound to
// this executor from then on); answers come back one per heartbeat, in order. A stream that
// fails, stalls or is ended by the controller is dead: the next heartbeat opens another.
//
// A heartbeat not answered in time fails its caller, but the stream is kept (as it is when the
// controller answers that etcd did not take a heartbeat in time): a controller that
// is slow (overloaded) still works through the heartbeats it was sent, and each one it gets to
// still keeps the executor's lease. Dropping the stream at the first late answer made the
// executor open another and authenticate again, and its retries came faster than its interval:
// with 10,000 executors that turned one slow second into a storm of new streams the controller
// could not get out of. Only a stream that has left a heartbeat unanswered for STALL_TIMEOUTS
// timeouts is given up.

import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { UnavailableError } from '../errors.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../gen/grid/v1/executor.js';

/** A stream whose oldest unanswered heartbeat is this many timeouts old is given up. */
export const STALL_TIMEOUTS = 3;

interface Waiting {
  resolve: (res: HeartbeatResponse) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  sentAt: number;
  /** Its caller was answered already (it timed out): the answer, when it comes, goes nowhere. */
  settled: boolean;
}

export class BeatStream {
  private readonly waiting: Waiting[] = [];
  private sent = 0;
  /** Why the stream is dead; undefined while it is open. */
  private dead?: Error;
  /** It died because an answer did not come in time. */
  stalled = false;

  constructor(
    private readonly call: ClientDuplexStream<HeartbeatRequest, HeartbeatResponse>,
    /** GRID's error for the status the stream ended with. */
    fail: (err: ServiceError) => Error,
    private readonly auth: { executorId: string; executorSecret: string },
    private readonly now: () => number = () => performance.now(),
  ) {
    call.on('data', (res: HeartbeatResponse) => {
      const w = this.waiting.shift();
      if (!w) return;
      // Not recorded (etcd did not take it in time): this heartbeat failed, the stream is fine.
      if (res.notRecorded) this.settle(w, () => w.reject(new UnavailableError(`the controller could not record the heartbeat: ${res.notRecorded}`)));
      else this.settle(w, () => w.resolve(res));
    });
    call.on('error', (err: ServiceError) => this.die(fail(err)));
    call.on('end', () => this.die(new UnavailableError('the controller ended the heartbeat stream')));
  }

  /** Whether heartbeats can still go on this stream. */
  get open(): boolean {
    return !this.dead;
  }

  /** Heartbeats sent and not answered yet (those that timed out included). */
  get unanswered(): number {
    return this.waiting.length;
  }

  /**
   * Sends a heartbeat and waits for its answer; rejects if none comes in time. The stream stays
   * open unless its oldest unanswered heartbeat is STALL_TIMEOUTS timeouts old.
   */
  send(status: Omit<HeartbeatRequest, 'executorId' | 'executorSecret'>, timeoutMs: number): Promise<HeartbeatResponse> {
    if (this.dead) return Promise.reject(this.dead);
    // The secret goes once, in the first message: the stream is this executor's from then on.
    const req: HeartbeatRequest = { ...status, executorId: this.auth.executorId, executorSecret: this.sent++ === 0 ? this.auth.executorSecret : '' };
    return new Promise<HeartbeatResponse>((resolve, reject) => {
      const w: Waiting = {
        resolve,
        reject,
        sentAt: this.now(),
        settled: false,
        timer: setTimeout(() => {
          this.settle(w, () => reject(new UnavailableError('the controller did not answer a heartbeat in time')));
          const oldest = this.waiting[0];
          if (!this.dead && oldest && this.now() - oldest.sentAt >= STALL_TIMEOUTS * timeoutMs) {
            this.stalled = true;
            this.die(new UnavailableError(`the controller left a heartbeat unanswered for ${Math.round((this.now() - oldest.sentAt) / 1000)} s: the heartbeat stream stalled`));
          }
        }, timeoutMs),
      };
      this.waiting.push(w);
      this.call.write(req);
    });
  }

  /** Ends the stream from this side (the executor stops heartbeating). */
  close(): void {
    if (this.dead) return;
    this.dead = new UnavailableError('the heartbeat stream was closed');
    this.call.end();
    this.rejectAll(this.dead);
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = err;
    this.call.cancel();
    this.rejectAll(err);
  }

  private settle(w: Waiting, answer: () => void): void {
    clearTimeout(w.timer);
    if (w.settled) return;
    w.settled = true;
    answer();
  }

  private rejectAll(err: Error): void {
    for (const w of this.waiting.splice(0)) this.settle(w, () => w.reject(err));
  }
}
