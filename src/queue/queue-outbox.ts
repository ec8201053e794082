/**
 * The admission queue's callback outbox: position updates and queue events are queued while the
 * queue changes its state and run afterwards, in the order the changes happened. A callback that
 * re-enters the queue appends to the same run; a callback that throws is reported to `onError`
 * and the run goes on, so a subscriber's bug cannot corrupt the queue. Internal to src/queue.
 */
export class QueueOutbox {
  private readonly pending: Array<() => void> = [];
  private flushing = false;

  constructor(private readonly onError: (e: unknown) => void) {}

  /** Queues `fn` to run at the next flush. */
  push(fn: () => void): void {
    this.pending.push(fn);
  }

  /** Runs the queued callbacks in order (no-op when already running further up the stack). */
  flush(): void {
    if (this.flushing) return;
    this.flushing = true;
    try {
      for (let i = 0; i < this.pending.length; i++) {
        try {
          this.pending[i]!();
        } catch (e) {
          // A subscriber's bug must not corrupt the queue: report it and go on.
          this.onError(e);
        }
      }
    } finally {
      this.pending.length = 0;
      this.flushing = false;
    }
  }
}
