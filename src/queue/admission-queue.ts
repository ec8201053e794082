import type { ParleyError } from '../errors/parley-error.js';
import type { AcquireOptions, AdmissionQueueOptions, Lease, QueueEvent, QueueSnapshot } from './admission-queue-types.js';
import { FairLine } from './fair-scheduler.js';
import { MAX_TIMER_MS, checkInt, queueErrors } from './queue-errors.js';
import { QueueOutbox } from './queue-outbox.js';
import { ANONYMOUS, Waiter, waitingRows } from './queue-waiter.js';
import { WaiterList } from './waiter-list.js';

export type { AcquireFairness, AcquireOptions, AdmissionQueueOptions, Lease, PositionUpdate, QueueEvent, QueueEventType, QueueSnapshot } from './admission-queue-types.js';

/**
 * Admission queue for one upstream: model-running requests acquire a lease (a slot) before they
 * call the upstream, and wait when all slots are taken: in FIFO order, or with `fair` in the fair
 * scheduler's order (weighted fair queueing between keys, switch-aware; src/queue/fair-scheduler.ts).
 *
 * Callbacks (`onPosition`, `onEvent`) run synchronously, after the queue's state is consistent, in
 * the order the changes happened; a callback that throws is ignored so it cannot break the queue.
 */
export class AdmissionQueue {
  readonly name: string;
  private slots: number;
  private readonly maxDepth: number;
  private readonly maxWaitMs: number;
  private readonly now: () => number;
  private readonly onEvent: ((e: QueueEvent) => void) | undefined;
  private readonly waiters: WaiterList<Waiter> | FairLine<Waiter>;
  private readonly fairLine: FairLine<Waiter> | undefined;
  private draining = false;
  private readonly waiterById = new Map<string, Waiter>();
  private readonly runningById = new Map<string, number>();
  private activeCount = 0;
  private paused = false;
  private closedReason: ParleyError | undefined;
  private idleResolvers: Array<() => void> = [];
  private readonly outbox: QueueOutbox;

  /** @throws RangeError when slots, maxDepth or maxWaitMs is out of range. */
  constructor(opts: AdmissionQueueOptions) {
    this.name = opts.name;
    this.slots = checkInt('slots', opts.slots ?? 1, 1);
    this.maxDepth = checkInt('maxDepth', opts.maxDepth, 0);
    this.maxWaitMs = checkInt('maxWaitMs', opts.maxWaitMs, 0, MAX_TIMER_MS);
    this.now = opts.now ?? Date.now;
    this.onEvent = opts.onEvent;
    this.outbox = new QueueOutbox(opts.onCallbackError ?? ((e) => process.emitWarning(`admission queue ${opts.name}: a callback threw: ${String(e)}`)));
    this.fairLine = opts.fair ? new FairLine<Waiter>({ now: this.now, switchMaxWaitMs: opts.fair.switchMaxWaitMs }) : undefined;
    this.waiters = this.fairLine ?? new WaiterList<Waiter>();
  }

  /**
   * Waits for a slot. Resolves at once when a slot is free and nobody waits.
   * Rejects (never throws synchronously) with a ParleyError:
   * PARLEY_ERR_QUEUE_FULL (503, Ollama's "server busy" text) at once when maxDepth requests wait;
   * PARLEY_ERR_QUEUE_WAIT_TIMEOUT (503) after maxWaitMs; PARLEY_ERR_QUEUE_CANCELLED (499,
   * "request canceled") when `signal` aborts first; the close() reason after close();
   * PARLEY_ERR_QUEUE_DRAINING (503) while drained; PARLEY_ERR_USAGE_TOO_MANY_QUEUED (429) when the
   * key already has `fair.maxQueued` requests waiting (fair queues only).
   */
  acquire(opts: AcquireOptions): Promise<Lease> {
    const { requestId, signal } = opts;
    if (this.closedReason) return this.refuse(requestId, this.closedReason, 'rejected');
    if (signal?.aborted) return this.refuse(requestId, queueErrors.cancelled(), 'cancelled');
    if (this.draining) return this.refuse(requestId, queueErrors.draining(), 'rejected');
    const fair = opts.fair ?? ANONYMOUS;
    if (this.waiters.size === 0 && this.canGrant() && (this.fairLine?.admits(fair) ?? true)) {
      const lease = this.grant(opts, 0);
      this.flush();
      return Promise.resolve(lease);
    }
    if (this.waiters.size >= this.maxDepth) {
      return this.refuse(requestId, queueErrors.full(), 'rejected');
    }
    if (this.fairLine && fair.maxQueued > 0 && this.fairLine.queuedOf(fair.key) >= fair.maxQueued) {
      return this.refuse(requestId, queueErrors.tooManyQueued(fair.maxQueued), 'rejected');
    }
    return new Promise<Lease>((resolve, reject) => {
      const w = new Waiter(opts, this.now(), resolve, reject);
      this.emit({ type: 'enqueued', requestId });
      this.waiters.push(w, this.notifyMoved);
      this.waiterById.set(requestId, w);
      if (this.maxWaitMs > 0) {
        w.timer = setTimeout(() => this.expire(w), this.maxWaitMs);
        w.timer.unref?.();
      }
      if (signal) {
        const onAbort = (): void => this.cancel(w);
        signal.addEventListener('abort', onAbort, { once: true });
        w.detachAbort = () => signal.removeEventListener('abort', onAbort);
      }
      this.flush();
    });
  }

  /** Requests waiting (not running). */
  get depth(): number {
    return this.waiters.size;
  }

  /** Leases held. */
  get active(): number {
    return this.activeCount;
  }

  /** 1-based position among waiters, 0 if running, undefined if unknown. O(position) for non-subscribers. */
  positionOf(requestId: string): number | undefined {
    const w = this.waiterById.get(requestId);
    if (w) return this.waiters.positionOf(w);
    return this.runningById.has(requestId) ? 0 : undefined;
  }

  /** A copy of the queue's state for /admin; O(depth). */
  snapshot(): QueueSnapshot {
    const waiting = waitingRows(this.waiters, this.now());
    return { name: this.name, slots: this.slots, active: this.activeCount, depth: this.waiters.size, maxDepth: this.maxDepth, paused: this.paused, draining: this.draining, waiting };
  }

  /** Whether requests for `model` (normalised name) wait or run here (fair queues know running ones). */
  modelInUse(model: string): boolean {
    if (this.fairLine?.modelRunning(model)) return true;
    for (const w of this.waiterById.values()) if (w.opts.model === model) return true;
    return false;
  }

  /** Admin drain: refuses new requests (PARLEY_ERR_QUEUE_DRAINING) while queued and running ones go on; resume() ends it. */
  drain(): void {
    this.draining = true;
  }

  /**
   * Takes one waiting request out of the queue; it is answered with `reason` (default
   * PARLEY_ERR_QUEUE_CLEARED). @returns false when no such request waits.
   */
  cancelWaiting(requestId: string, reason = queueErrors.cleared()): boolean {
    const w = this.waiterById.get(requestId);
    if (!w) return false;
    this.leave(w, 'cancelled', reason);
    return true;
  }

  /** Answers every waiting request with `reason` (default PARLEY_ERR_QUEUE_CLEARED); running ones go on. @returns how many left. */
  clear(reason = queueErrors.cleared()): number {
    const ids = [...this.waiterById.keys()];
    for (const id of ids) this.cancelWaiting(id, reason);
    return ids.length;
  }

  /** Changes the number of slots live; extra slots admit waiters at once. Fewer slots never revoke held leases. @throws RangeError if n is not an integer ≥ 1. */
  setSlots(n: number): void {
    this.slots = checkInt('slots', n, 1);
    this.pump();
    this.flush();
  }

  /** Stops granting leases (waiters stay and new requests queue) until resume(). */
  pause(): void {
    this.paused = true;
  }

  /** Ends pause() and drain(). */
  resume(): void {
    this.paused = false;
    this.draining = false;
    this.pump();
    this.flush();
  }

  /** Rejects every waiter with `reason` (default PARLEY_ERR_SHUTTING_DOWN) and every later acquire. Held leases stay valid. */
  close(reason: ParleyError = queueErrors.shuttingDown()): void {
    this.closedReason ??= reason;
    const t = this.now();
    for (const w of this.waiters.drain()) {
      this.forget(w);
      this.emit({ type: 'rejected', requestId: w.opts.requestId, waitedMs: t - w.enqueuedAtMs });
      w.reject(reason);
    }
    this.checkIdle();
    this.flush();
  }

  /** Resolves when no lease is held and nobody waits (at once if so already). */
  onIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleResolvers.push(resolve));
  }

  private canGrant(): boolean {
    return !this.paused && this.activeCount < this.slots;
  }

  private pump(): void {
    while (this.canGrant()) {
      // The head of the FIFO line, or the fair scheduler's choice.
      const w = this.waiters.first();
      if (!w) return;
      const lease = this.grant(w.opts, Math.max(0, this.now() - w.enqueuedAtMs), w);
      this.detach(w);
      w.resolve(lease);
    }
  }

  private grant(opts: AcquireOptions, waitedMs: number, w?: Waiter): Lease {
    const { requestId, onPosition } = opts;
    this.fairLine?.granted(opts.fair ?? ANONYMOUS, opts.model, w);
    this.activeCount++;
    this.runningById.set(requestId, (this.runningById.get(requestId) ?? 0) + 1);
    this.emit({ type: 'granted', requestId, waitedMs });
    if (onPosition) {
      const update = { position: 0, depth: this.waiters.size };
      this.outbox.push(() => onPosition(update));
    }
    let released = false;
    return {
      requestId,
      waitedMs,
      release: () => {
        if (released) return;
        released = true;
        this.fairLine?.released(opts.fair ?? ANONYMOUS, opts.model);
        this.onRelease(requestId);
      },
    };
  }

  private onRelease(requestId: string): void {
    this.activeCount--;
    const n = (this.runningById.get(requestId) ?? 1) - 1;
    if (n > 0) this.runningById.set(requestId, n);
    else this.runningById.delete(requestId);
    this.emit({ type: 'released', requestId });
    this.pump();
    this.checkIdle();
    this.flush();
  }

  private cancel(w: Waiter): void {
    this.leave(w, 'cancelled', queueErrors.cancelled());
  }

  private expire(w: Waiter): void {
    this.leave(w, 'timed_out', queueErrors.waitTimeout(this.maxWaitMs));
  }

  /** A waiter leaves without a lease. */
  private leave(w: Waiter, type: 'cancelled' | 'timed_out', error: ParleyError): void {
    if (!w.inList) return;
    this.detach(w);
    this.emit({ type, requestId: w.opts.requestId, waitedMs: Math.max(0, this.now() - w.enqueuedAtMs) });
    w.reject(error);
    this.checkIdle();
    this.flush();
  }

  private detach(w: Waiter): void {
    this.waiters.remove(w, this.notifyMoved);
    this.forget(w);
  }

  /** Drops the id entry, the wait timer and the abort listener of a waiter that left the list. */
  private forget(w: Waiter): void {
    if (this.waiterById.get(w.opts.requestId) === w) this.waiterById.delete(w.opts.requestId);
    if (w.timer !== undefined) clearTimeout(w.timer);
    w.timer = undefined;
    w.detachAbort?.();
    w.detachAbort = undefined;
  }

  private readonly notifyMoved = (w: Waiter): void => {
    const onPosition = w.opts.onPosition;
    if (!onPosition) return;
    const update = { position: w.position, depth: this.waiters.size };
    this.outbox.push(() => onPosition(update));
  };

  private refuse(requestId: string, error: ParleyError, type: 'rejected' | 'cancelled'): Promise<Lease> {
    this.emit({ type, requestId });
    this.flush();
    return Promise.reject(error);
  }

  private emit(e: QueueEvent): void {
    const onEvent = this.onEvent;
    if (onEvent) this.outbox.push(() => onEvent(e));
  }

  private isIdle(): boolean {
    return this.activeCount === 0 && this.waiters.size === 0;
  }

  private checkIdle(): void {
    if (!this.isIdle() || this.idleResolvers.length === 0) return;
    const resolvers = this.idleResolvers;
    this.idleResolvers = [];
    for (const r of resolvers) r();
  }

  /** Runs the queued callbacks (see QueueOutbox). */
  private flush(): void {
    this.outbox.flush();
  }
}
