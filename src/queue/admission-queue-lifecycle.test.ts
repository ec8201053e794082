import { afterEach, describe, expect, it, vi } from 'vitest';
import { ParleyError } from '../errors/parley-error.js';
import { queue, ticks, track } from '../../test/helpers/admission.js';
import type { Lease, QueueEvent } from './admission-queue.js';

afterEach(() => {
  vi.useRealTimers();
});

/** Pausing, closing, idling, snapshots and events, callback errors, many waiters (the rest: admission-queue.test.ts). */
describe('AdmissionQueue lifecycle', () => {
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
