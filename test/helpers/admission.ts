import { AdmissionQueue, type AdmissionQueueOptions } from '../../src/queue/admission-queue.js';

/** Shared by the AdmissionQueue tests (src/queue/admission-queue*.test.ts). */

/** A queue named `local` with 1 slot, room for 512 waiters and no wait limit, unless `opts` say otherwise. */
export function queue(opts: Partial<AdmissionQueueOptions> = {}): AdmissionQueue {
  return new AdmissionQueue({ name: 'local', slots: 1, maxDepth: 512, maxWaitMs: 0, ...opts });
}

/** Wraps a promise so a test can see, synchronously, whether it has settled yet. */
export function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined; error: () => unknown; promise: Promise<T> } {
  let done = false;
  let value: T | undefined;
  let error: unknown;
  const promise = p.then(
    (v) => ((done = true), (value = v)),
    (e: unknown) => ((done = true), (error = e), undefined as never),
  );
  promise.catch(() => {});
  return { settled: () => done, value: () => value, error: () => error, promise: p };
}

/** Lets pending promise callbacks run (no timers involved). */
export async function ticks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
