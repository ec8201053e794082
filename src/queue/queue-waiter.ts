import type { ParleyError } from '../errors/parley-error.js';
import type { AcquireFairness, AcquireOptions, Lease, QueueSnapshot } from './admission-queue-types.js';
import { FairNode } from './fair-scheduler.js';

/** The fair class of a request without one: key `anonymous`, weight 1, cost 1, no caps. */
export const ANONYMOUS: AcquireFairness = { key: 'anonymous', weight: 1, cost: 1, maxConcurrent: 0, maxQueued: 0 };

/** One waiting request of an admission queue: its options, promise callbacks, wait timer and abort listener. Internal to src/queue. */
export class Waiter extends FairNode {
  timer: ReturnType<typeof setTimeout> | undefined;
  detachAbort: (() => void) | undefined;
  constructor(
    readonly opts: AcquireOptions,
    enqueuedAtMs: number,
    readonly resolve: (lease: Lease) => void,
    readonly reject: (e: ParleyError) => void,
  ) {
    super(opts.onPosition !== undefined, opts.fair ?? ANONYMOUS, opts.model, enqueuedAtMs);
  }
}

/** The `waiting` rows of a queue snapshot: waiters in the order given, positions from 1, waits at `nowMs`, copies of `meta`. */
export function waitingRows(waiters: Iterable<Waiter>, nowMs: number): QueueSnapshot['waiting'] {
  const rows: QueueSnapshot['waiting'] = [];
  let position = 0;
  for (const w of waiters) {
    const row: QueueSnapshot['waiting'][number] = { requestId: w.opts.requestId, position: ++position, waitedMs: Math.max(0, nowMs - w.enqueuedAtMs) };
    if (w.opts.meta !== undefined) row.meta = { ...w.opts.meta };
    rows.push(row);
  }
  return rows;
}
