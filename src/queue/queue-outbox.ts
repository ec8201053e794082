/**
 * The admission queue's callback outbox: position updates and queue events are queued while the
 * queue changes its state and run afterwards, in the order the changes happened. A callback that
 * re-enters the queue appends to the same run; a callback that throws is ignored, so a
 * subscriber's bug cannot corrupt the queue. Internal to src/queue.
 */
export class QueueOutbox {
  private readonly pending: Array<() => void> = [];
  private flushing = false;

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
        } catch {
          // A subscriber's bug must not corrupt the queue; the subscriber owns its errors.
        }
      }
    } finally {
      this.pending.length = 0;
      this.flushing = false;
    }
  }
}
