import { describe, expect, it } from 'vitest';
import { FairLine, FairNode, type FairClass } from './fair-scheduler.js';

const cls = (key: string, over: Partial<FairClass> = {}): FairClass => ({ key, weight: 1, cost: 10, maxConcurrent: 0, ...over });

/** A line with a settable clock; `grant()` takes the next request as the queue would. */
function line(switchMaxWaitMs = 0) {
  let t = 0;
  const l = new FairLine<FairNode & { id: string }>({ now: () => t, switchMaxWaitMs: () => switchMaxWaitMs });
  const moved: string[] = [];
  const add = (id: string, c: FairClass, model?: string, subscribed = false) => {
    const n = Object.assign(new FairNode(subscribed, c, model, t), { id });
    l.push(n, (m) => moved.push(`${m.id}@${m.position}`));
    return n;
  };
  const grant = () => {
    const n = l.first();
    if (!n) return undefined;
    l.granted(n.fair, n.model, n);
    l.remove(n, () => undefined);
    return n;
  };
  return { l, add, grant, moved, tick: (ms: number) => (t += ms) };
}

describe('FairLine', () => {
  it('serves a key that arrives later next, then alternates with the busy key (equal costs and weights)', () => {
    const { l, add, grant } = line();
    for (let i = 1; i <= 50; i++) add(`A${i}`, cls('A'));
    grant();
    for (let i = 1; i <= 3; i++) add(`B${i}`, cls('B'));
    expect([...l].slice(0, 7).map((n) => n.id)).toEqual(['B1', 'A2', 'B2', 'A3', 'B3', 'A4', 'A5']);
    expect(Array.from({ length: 7 }, () => grant()!.id)).toEqual(['B1', 'A2', 'B2', 'A3', 'B3', 'A4', 'A5']);
  });

  it('shares tokens in proportion to weight and counts cost in tokens', () => {
    const { add, grant } = line();
    for (let i = 0; i < 30; i++) add(`P${i}`, cls('P', { weight: 2 }));
    for (let i = 0; i < 30; i++) add(`F${i}`, cls('F', { weight: 1 }));
    for (let i = 0; i < 10; i++) add(`Big${i}`, cls('Big', { weight: 1, cost: 40 }));
    const first = Array.from({ length: 21 }, () => grant()!.id[0]);
    const count = (c: string) => first.filter((x) => x === c).length;
    expect(count('P')).toBeGreaterThanOrEqual(2 * count('F') - 1);
    expect(count('B')).toBeLessThanOrEqual(2);
  });

  it('skips a key at its concurrency cap until one of its requests is released', () => {
    const { l, add, grant } = line();
    const c = cls('A', { maxConcurrent: 1 });
    add('A1', c);
    add('A2', c);
    add('B1', cls('B'));
    expect(grant()!.id).toBe('A1');
    expect(grant()!.id).toBe('B1');
    expect(l.first()).toBeUndefined();
    expect(l.admits(c)).toBe(false);
    l.released(c, undefined);
    expect(grant()!.id).toBe('A2');
  });

  it('prefers the loaded model until another request has been passed over for the bound, then switches once', () => {
    const { l, add, grant, tick } = line(100);
    add('x0', cls('k'), 'x');
    grant();
    add('y1', cls('k'), 'y');
    add('x1', cls('k'), 'x');
    add('y2', cls('k'), 'y');
    add('x2', cls('k'), 'x');
    expect([...l].map((n) => n.id)).toEqual(['x1', 'x2', 'y1', 'y2']);
    expect(grant()!.id).toBe('x1');
    tick(100);
    expect(grant()!.id).toBe('y1');
    // Right after the switch the bound starts again: stay on y.
    expect(grant()!.id).toBe('y2');
    expect(grant()!.id).toBe('x2');
    expect(l.switches).toBe(2);
  });

  it('keeps subscribers\' positions equal to the grant order and tells them when it changes', () => {
    const { l, add, grant, moved } = line();
    for (let i = 1; i <= 3; i++) add(`A${i}`, cls('A'), undefined, true);
    grant();
    moved.length = 0;
    const b = add('B1', cls('B'), undefined, true);
    expect(l.positionOf(b)).toBe(1);
    expect(moved).toEqual(['B1@1', 'A2@2', 'A3@3']);
  });

  it('gives back the virtual time of a request that leaves without a grant', () => {
    const { l, add, grant } = line();
    add('A1', cls('A'));
    grant();
    const a2 = add('A2', cls('A'));
    l.remove(a2, () => undefined);
    const a3 = add('A3', cls('A'));
    // A3 starts where A2 would have: A's finish tag went back from 20 to 10 (cost 10, weight 1).
    expect(a3.tag).toBe(10);
    expect(l.queuedOf('A')).toBe(1);
  });
});
