/**
 * Public shapes of the admission queue (src/queue/admission-queue.ts), kept apart so the queue
 * file stays readable. Import them from './admission-queue.js', which re-exports them.
 */
/** What happened to one request in the queue; for metrics (counted elsewhere, not here). */
export type QueueEventType = 'enqueued' | 'granted' | 'rejected' | 'cancelled' | 'timed_out' | 'released';
/** `waitedMs`: time spent waiting, in ms (on granted, cancelled, timed_out and rejected-by-close). */
export interface QueueEvent { type: QueueEventType; requestId: string; waitedMs?: number }
/** `position`: 1-based among waiters, 0 once the lease is granted. `depth`: waiters right now. */
export interface PositionUpdate { position: number; depth: number }

export interface AdmissionQueueOptions {
  /** Upstream name, shown in snapshots. */
  name: string;
  /** Concurrent leases, integer ≥ 1. Default 1 (like OLLAMA_NUM_PARALLEL=1). */
  slots?: number;
  /** Most requests that may wait, integer ≥ 0; one more is refused with PARLEY_ERR_QUEUE_FULL. */
  maxDepth: number;
  /** Longest wait for a lease, in ms (0 to 2^31-1, setTimeout's limit), before PARLEY_ERR_QUEUE_WAIT_TIMEOUT; 0 = no limit. */
  maxWaitMs: number;
  /** Clock in ms, default Date.now. Only used to measure waits; the wait limit uses setTimeout. */
  now?: () => number;
  /** Told about every enqueue, grant, rejection, cancel, timeout and release. */
  onEvent?: (e: QueueEvent) => void;
  /** Told when an `onPosition` or `onEvent` callback throws (the queue itself carries on); default: a process warning. */
  onCallbackError?: (e: unknown) => void;
  /**
   * Fair queueing between keys with switch-aware scheduling (src/queue/fair-scheduler.ts);
   * absent = first come, first served. `switchMaxWaitMs` is read at every decision (0 = off).
   */
  fair?: { switchMaxWaitMs: () => number };
}

/** A request's class for the fair scheduler (see FairClass); `maxQueued` 0 = unlimited. */
export interface AcquireFairness {
  key: string;
  weight: number;
  cost: number;
  maxConcurrent: number;
  maxQueued: number;
}

export interface AcquireOptions {
  requestId: string;
  /** Abort while waiting → leaves the queue at once, PARLEY_ERR_QUEUE_CANCELLED. Ignored once granted. */
  signal?: AbortSignal;
  /** Called whenever the position changes (at enqueue, when someone ahead leaves) and with 0 once at grant. */
  onPosition?: (update: PositionUpdate) => void;
  /** Free-form details shown in snapshot(), e.g. `{ model, caller }`. */
  meta?: Record<string, unknown>;
  /** Fair queue class (ignored by a FIFO queue). Default: key `anonymous`, weight 1, cost 1, no caps. */
  fair?: AcquireFairness;
  /** Normalised model name, for switch-aware scheduling. */
  model?: string;
}

/** A held slot. The holder must call release() when the upstream call ends, however it ends. */
export interface Lease {
  readonly requestId: string;
  /** Time spent waiting for this lease, in ms (0 on the fast path). */
  readonly waitedMs: number;
  /** Gives the slot back and admits the next waiter synchronously. Idempotent. */
  release(): void;
}

export interface QueueSnapshot {
  name: string;
  slots: number;
  active: number;
  depth: number;
  maxDepth: number;
  paused: boolean;
  /** Refusing new requests (admin drain) while queued ones run. */
  draining: boolean;
  waiting: Array<{ requestId: string; position: number; waitedMs: number; meta?: Record<string, unknown> }>;
}
