// Whether this process runs late: a timer due every `tickMs` that fires more than `lateMs`
// after it was due says the event loop was that far behind (overloaded, or starved of CPU).
// Late from the first such tick; on time again once `onTimeMs` has passed without one, so that
// a loop that falls behind again and again is one late stretch, not many.

export interface LoopLagOptions {
  /** Told when the process becomes late (with how far behind the tick was) and on time again. */
  onChange: (late: boolean, behindMs: number) => void;
  tickMs?: number;
  lateMs?: number;
  onTimeMs?: number;
  now?: () => number;
}

export class LoopLag {
  private timer?: NodeJS.Timeout;
  private late = false;
  private lastLateAt = 0;
  private readonly tickMs: number;
  private readonly lateMs: number;
  private readonly onTimeMs: number;
  private readonly now: () => number;

  constructor(private readonly o: LoopLagOptions) {
    this.tickMs = o.tickMs ?? 250;
    this.lateMs = o.lateMs ?? 1_000;
    this.onTimeMs = o.onTimeMs ?? 5_000;
    this.now = o.now ?? (() => performance.now());
  }

  start(): void {
    let due = this.now() + this.tickMs;
    this.timer = setInterval(() => {
      const at = this.now();
      const behind = at - due;
      due = at + this.tickMs;
      if (behind > this.lateMs) {
        this.lastLateAt = at;
        if (!this.late) {
          this.late = true;
          this.o.onChange(true, behind);
        }
      } else if (this.late && at - this.lastLateAt >= this.onTimeMs) {
        this.late = false;
        this.o.onChange(false, behind);
      }
    }, this.tickMs);
    this.timer.unref();
  }

  isLate(): boolean {
    return this.late;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
