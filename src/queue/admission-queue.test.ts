import { afterEach, describe, expect, it, vi } from 'vitest';
import { OLLAMA_SERVER_BUSY_TEXT } from '../errors/codes.js';
import { ParleyError } from '../errors/parley-error.js';
import { AdmissionQueue, type AdmissionQueueOptions, type Lease, type QueueEvent } from './admission-queue.js';

function queue(opts: Partial<AdmissionQueueOptions> = {}): AdmissionQueue {
  return new AdmissionQueue({ name: 'local', slots: 1, maxDepth: 512, maxWaitMs: 0, ...opts });
}

/** Wraps a promise so a test can see, synchronously, whether it has settled yet. */
function track<T>(p: Promise<T>): { settled: () => boolean; value: () => T | undefined; error: () => unknown; promise: Promise<T> } {
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
async function ticks(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

afterEach(() => {
  vi.useRealTimers();
});

describe('AdmissionQueue', () => {
  it('runs 20 concurrent requests one at a time, in arrival order, with 1 slot', async () => {
    const q = queue();
    let running = 0;
    let maxRunning = 0;
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const lease = await q.acquire({ requestId: `r${i}` });
        running++;
        maxRunning = Math.max(maxRunning, running, q.active);
        order.push(i);
        await new Promise((r) => setTimeout(r, 1));
        running--;
        lease.release();
      }),
    );
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(maxRunning).toBe(1);
    expect(q.active).toBe(0);
    expect(q.depth).toBe(0);
  });

  it('grants at once when a slot is free, with waitedMs 0 and a single position 0 update', async () => {
    const q = queue();
    const positions: number[] = [];
    const lease = await q.acquire({ requestId: 'a', onPosition: (u) => positions.push(u.position) });
    expect(lease.requestId).toBe('a');
    expect(lease.waitedMs).toBe(0);
    expect(positions).toEqual([0]);
    expect(q.positionOf('a')).toBe(0);
    expect(q.positionOf('nobody')).toBeUndefined();
    lease.release();
    expect(q.positionOf('a')).toBeUndefined();
  });

  it('answers 503 "server busy…" at once to the 513th waiter when maxDepth is 512', async () => {
    const q = queue({ maxDepth: 512 });
    const held = await q.acquire({ requestId: 'running' });
    const waiters = Array.from({ length: 512 }, (_, i) => track(q.acquire({ requestId: `w${i}` })));
    expect(q.depth).toBe(512);
    const err = await q.acquire({ requestId: 'one-too-many' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ParleyError);
    expect(err).toMatchObject({ code: 'PARLEY_ERR_QUEUE_FULL', status: 503, retryable: true });
    expect((err as ParleyError).message).toBe('server busy, please try again.  maximum pending requests exceeded');
    expect((err as ParleyError).message).toBe(OLLAMA_SERVER_BUSY_TEXT);
    expect(q.depth).toBe(512);
    held.release();
    await ticks();
    expect(waiters[0]!.settled()).toBe(true);
    expect(q.positionOf('w1')).toBe(1);
    q.close();
  });

  it('frees an aborted waiter\'s place at once and moves everyone behind it up', async () => {
    const q = queue();
    const held = await q.acquire({ requestId: 'running' });
    const seen: Record<string, number[]> = { a: [], b: [], c: [] };
    const ctl = new AbortController();
    const a = track(q.acquire({ requestId: 'a', signal: ctl.signal, onPosition: (u) => seen.a!.push(u.position) }));
    const b = track(q.acquire({ requestId: 'b', onPosition: (u) => seen.b!.push(u.position) }));
    const c = track(q.acquire({ requestId: 'c', onPosition: (u) => seen.c!.push(u.position) }));
    expect([q.positionOf('a'), q.positionOf('b'), q.positionOf('c')]).toEqual([1, 2, 3]);

    ctl.abort();
    expect(q.depth).toBe(2);
    expect(q.positionOf('a')).toBeUndefined();
    expect([q.positionOf('b'), q.positionOf('c')]).toEqual([1, 2]);
    const err = await a.promise.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PARLEY_ERR_QUEUE_CANCELLED', status: 499, message: 'request canceled' });

    held.release();
    const leaseB = await b.promise;
    leaseB.release();
    (await c.promise).release();
    expect(seen).toEqual({ a: [1], b: [2, 1, 0], c: [3, 2, 1, 0] });
  });

  it('rejects an already-aborted request without granting it', async () => {
    const q = queue();
    const err = await q.acquire({ requestId: 'x', signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PARLEY_ERR_QUEUE_CANCELLED', status: 499 });
    expect(q.active).toBe(0);
  });

  it('ignores an abort after the lease was granted, and drops its listener from the signal', async () => {
    const q = queue();
    const held = await q.acquire({ requestId: 'running' });
    const ctl = new AbortController();
    const removed = vi.spyOn(ctl.signal, 'removeEventListener');
    const waiting = q.acquire({ requestId: 'a', signal: ctl.signal });
    held.release();
    const lease = await waiting;
    expect(removed).toHaveBeenCalledWith('abort', expect.any(Function));
    ctl.abort();
    expect([q.active, q.positionOf('a')]).toEqual([1, 0]);
    lease.release();
    expect(q.active).toBe(0);
  });

  it('rejects with 503 PARLEY_ERR_QUEUE_WAIT_TIMEOUT once maxWaitMs has passed, and not before', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const events: QueueEvent[] = [];
    const q = queue({ maxWaitMs: 600_000, onEvent: (e) => events.push(e) });
    const held = await q.acquire({ requestId: 'running' });
    const w = track(q.acquire({ requestId: 'w' }));
    vi.advanceTimersByTime(599_999);
    await ticks();
    expect(w.settled()).toBe(false);
    vi.advanceTimersByTime(1);
    const err = await w.promise.catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PARLEY_ERR_QUEUE_WAIT_TIMEOUT', status: 503, message: 'queue wait exceeded 600000 ms; please try again' });
    expect(q.depth).toBe(0);
    expect(events.at(-1)).toEqual({ type: 'timed_out', requestId: 'w', waitedMs: 600_000 });
    held.release();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('clears the wait timer when the waiter is granted or aborted', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const q = queue({ maxWaitMs: 1_000 });
    const held = await q.acquire({ requestId: 'running' });
    const ctl = new AbortController();
    const a = track(q.acquire({ requestId: 'a', signal: ctl.signal }));
    const b = track(q.acquire({ requestId: 'b' }));
    expect(vi.getTimerCount()).toBe(2);
    ctl.abort();
    vi.advanceTimersByTime(400);
    held.release();
    expect(vi.getTimerCount()).toBe(0);
    const lease = await b.promise;
    expect(lease.waitedMs).toBe(400);
    await expect(a.promise).rejects.toMatchObject({ code: 'PARLEY_ERR_QUEUE_CANCELLED' });
    lease.release();
  });

  it('treats a second release as a no-op', async () => {
    const q = queue();
    const first = await q.acquire({ requestId: 'a' });
    const b = track(q.acquire({ requestId: 'b' }));
    const c = track(q.acquire({ requestId: 'c' }));
    first.release();
    first.release();
    await ticks();
    expect(q.active).toBe(1);
    expect(b.settled()).toBe(true);
    expect(c.settled()).toBe(false);
    b.value()!.release();
    (await c.promise).release();
    expect(q.active).toBe(0);
  });

  it('admits waiters at once when setSlots raises concurrency, and never revokes leases when it lowers it', async () => {
    const q = queue();
    const held = await q.acquire({ requestId: 'a' });
    const waiters = ['b', 'c', 'd'].map((id) => track(q.acquire({ requestId: id })));
    q.setSlots(3);
    expect(q.active).toBe(3);
    expect(q.depth).toBe(1);
    q.setSlots(1);
    expect(q.active).toBe(3);
    held.release();
    (await waiters[0]!.promise).release();
    expect(q.depth).toBe(1);
    (await waiters[1]!.promise).release();
    expect(q.depth).toBe(0);
    (await waiters[2]!.promise).release();
    expect(() => q.setSlots(0)).toThrow(RangeError);
  });

  it('grants nothing while paused, queues new requests, and resumes in order', async () => {
    const q = queue({ slots: 2 });
    q.pause();
    expect(q.snapshot().paused).toBe(true);
    const a = track(q.acquire({ requestId: 'a' }));
    const b = track(q.acquire({ requestId: 'b' }));
    await ticks();
    expect([a.settled(), b.settled(), q.depth, q.active]).toEqual([false, false, 2, 0]);
    q.resume();
    expect(q.active).toBe(2);
    const leases = await Promise.all([a.promise, b.promise]);
    expect(leases.map((l) => l.requestId)).toEqual(['a', 'b']);
    leases.forEach((l) => l.release());
  });

  it('close() rejects every waiter with 503 PARLEY_ERR_SHUTTING_DOWN and refuses new requests', async () => {
    const events: QueueEvent[] = [];
    const q = queue({ maxWaitMs: 60_000, onEvent: (e) => events.push(e) });
    const held = await q.acquire({ requestId: 'running' });
    const waiters = ['a', 'b'].map((id) => q.acquire({ requestId: id }).catch((e: unknown) => e));
    q.close();
    for (const err of await Promise.all(waiters)) expect(err).toMatchObject({ code: 'PARLEY_ERR_SHUTTING_DOWN', status: 503 });
    await expect(q.acquire({ requestId: 'late' })).rejects.toMatchObject({ code: 'PARLEY_ERR_SHUTTING_DOWN' });
    expect(events.filter((e) => e.type === 'rejected').map((e) => e.requestId)).toEqual(['a', 'b', 'late']);
    expect(q.depth).toBe(0);
    expect(q.active).toBe(1);
    const idle = track(q.onIdle());
    await ticks();
    expect(idle.settled()).toBe(false);
    held.release();
    await idle.promise;
  });

  it('close(reason) rejects with the given error', async () => {
    const q = queue();
    const held = await q.acquire({ requestId: 'running' });
    const w = q.acquire({ requestId: 'w' });
    q.close(new ParleyError('PARLEY_ERR_INTERNAL', 'upstream removed'));
    await expect(w).rejects.toMatchObject({ code: 'PARLEY_ERR_INTERNAL', message: 'upstream removed' });
    held.release();
  });

  it('onIdle resolves at once when idle, else when the last lease is released', async () => {
    const q = queue();
    await q.onIdle();
    const a = await q.acquire({ requestId: 'a' });
    const b = track(q.acquire({ requestId: 'b' }));
    const idle = track(q.onIdle());
    a.release();
    await ticks();
    expect(idle.settled()).toBe(false);
    (await b.promise).release();
    await idle.promise;
    expect([q.active, q.depth]).toEqual([0, 0]);
  });

  it('reports waiters, positions, waits and meta in snapshot(), and emits events in order', async () => {
    let t = 1_000;
    const events: QueueEvent[] = [];
    const q = queue({ now: () => t, onEvent: (e) => events.push(e) });
    const held = await q.acquire({ requestId: 'a' });
    const b = q.acquire({ requestId: 'b', meta: { model: 'llama3.2', caller: 'key-1' } });
    t += 250;
    expect(q.snapshot()).toEqual({
      name: 'local', slots: 1, active: 1, depth: 1, maxDepth: 512, paused: false, draining: false,
      waiting: [{ requestId: 'b', position: 1, waitedMs: 250, meta: { model: 'llama3.2', caller: 'key-1' } }],
    });
    held.release();
    (await b).release();
    expect(events).toEqual([
      { type: 'granted', requestId: 'a', waitedMs: 0 },
      { type: 'enqueued', requestId: 'b' },
      { type: 'released', requestId: 'a' },
      { type: 'granted', requestId: 'b', waitedMs: 250 },
      { type: 'released', requestId: 'b' },
    ]);
  });

  it('keeps working when a position callback throws, and reports the error', async () => {
    const reported: unknown[] = [];
    const q = queue({ onCallbackError: (e) => reported.push(e) });
    const held = await q.acquire({ requestId: 'a' });
    const b = q.acquire({ requestId: 'b', onPosition: () => { throw new Error('subscriber bug'); } });
    held.release();
    (await b).release();
    expect(q.active).toBe(0);
    expect(reported.map((e) => (e as Error).message)).toContain('subscriber bug');
  });

  it('stays correct with 500 waiters when every other one aborts', async () => {
    const q = queue({ maxDepth: 512 });
    const held = await q.acquire({ requestId: 'running' });
    const ctls = Array.from({ length: 500 }, () => new AbortController());
    const last: number[] = new Array<number>(500).fill(-1);
    const waiters = ctls.map((ctl, i) =>
      track(q.acquire({ requestId: `w${i}`, signal: ctl.signal, onPosition: i % 10 === 1 ? (u) => (last[i] = u.position) : undefined })),
    );
    ctls.forEach((ctl, i) => i % 2 === 0 && ctl.abort());
    expect(q.depth).toBe(250);
    const survivors = Array.from({ length: 250 }, (_, k) => 2 * k + 1);
    survivors.forEach((i, k) => expect(q.positionOf(`w${i}`)).toBe(k + 1));
    survivors.forEach((i, k) => i % 10 === 1 && expect(last[i]).toBe(k + 1));
    expect(q.snapshot().waiting.map((w) => w.requestId)).toEqual(survivors.map((i) => `w${i}`));

    const granted: string[] = [];
    let lease: Lease = held;
    for (const i of survivors) {
      lease.release();
      lease = await waiters[i]!.promise;
      granted.push(lease.requestId);
      expect(q.active).toBe(1);
    }
    lease.release();
    expect(granted).toEqual(survivors.map((i) => `w${i}`));
    expect(last.filter((p, i) => i % 10 === 1 && p !== 0)).toEqual([]);
    const aborted = await Promise.all(waiters.filter((_, i) => i % 2 === 0).map((w) => w.promise.catch((e: unknown) => e)));
    expect(aborted.every((e) => (e as ParleyError).code === 'PARLEY_ERR_QUEUE_CANCELLED')).toBe(true);
    await q.onIdle();
  });
});
