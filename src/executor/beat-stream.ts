// The executor's end of ExecutorService.Heartbeats: one long-lived stream that carries every
// heartbeat, instead of a call each. Its first message carries the secret (the stream is bound to
// this executor from then on); answers come back one per heartbeat, in order. A stream that
// fails, stalls or is ended by the controller is dead: the next heartbeat opens another.

import type { ClientDuplexStream, ServiceError } from '@grpc/grpc-js';
import { UnavailableError } from '../errors.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../gen/grid/v1/executor.js';

interface Waiting {
  resolve: (res: HeartbeatResponse) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
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
  ) {
    call.on('data', (res: HeartbeatResponse) => {
      const w = this.waiting.shift();
      if (w) {
        clearTimeout(w.timer);
        w.resolve(res);
      }
    });
    call.on('error', (err: ServiceError) => this.die(fail(err)));
    call.on('end', () => this.die(new UnavailableError('the controller ended the heartbeat stream')));
  }

  /** Whether heartbeats can still go on this stream. */
  get open(): boolean {
    return !this.dead;
  }

  /** Sends a heartbeat and waits for its answer; rejects (and the stream is dead) if none comes in time. */
  send(status: Omit<HeartbeatRequest, 'executorId' | 'executorSecret'>, timeoutMs: number): Promise<HeartbeatResponse> {
    if (this.dead) return Promise.reject(this.dead);
    // The secret goes once, in the first message: the stream is this executor's from then on.
    const req: HeartbeatRequest = { ...status, executorId: this.auth.executorId, executorSecret: this.sent++ === 0 ? this.auth.executorSecret : '' };
    return new Promise<HeartbeatResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!this.dead) this.stalled = true;
        this.die(new UnavailableError('the controller did not answer a heartbeat in time'));
      }, timeoutMs);
      this.waiting.push({ resolve, reject, timer });
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

  private rejectAll(err: Error): void {
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
