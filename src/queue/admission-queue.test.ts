import { afterEach, describe, expect, it, vi } from 'vitest';
import { OLLAMA_SERVER_BUSY_TEXT } from '../errors/codes.js';
import { ParleyError } from '../errors/parley-error.js';
import { queue, ticks, track } from '../../test/helpers/admission.js';
import type { QueueEvent } from './admission-queue.js';

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
});
