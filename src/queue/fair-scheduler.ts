import { WaiterNode, type MovedFn } from './waiter-list.js';

/** What the fair scheduler needs to know of a waiting request. */
export interface FairClass {
  /** Fairness key: the API key id, or `anonymous`. */
  key: string;
  /** Tier weight ≥ 1: a key's share of the slots is proportional to it. */
  weight: number;
  /** Estimated tokens (prompt + reply reservation), ≥ 1: what a grant costs the key. */
  cost: number;
  /** Requests of this key running at once on this upstream; 0 = unlimited. */
  maxConcurrent: number;
}

/** A waiter the fair scheduler can order. */
export class FairNode extends WaiterNode {
  /** Virtual start tag (start-time fair queueing). */
  tag = 0;
  /** Set when the node leaves the line because it was granted (not cancelled). */
  granting = false;
  constructor(subscribed: boolean, readonly fair: FairClass, readonly model: string | undefined, readonly enqueuedAtMs: number) {
    super(subscribed);
  }
}

interface KeyState {
  /** Waiting nodes of this key, in arrival order. */
  waiting: FairNode[];
  /** Virtual finish tag of the key's last enqueued request. */
  lastFinish: number;
  running: number;
}

export interface FairLineOptions {
  now: () => number;
  /** Switch-aware bound in ms (read at every decision); 0 = off. */
  switchMaxWaitMs: () => number;
}

/**
 * The waiting line of a fair admission queue (replaces FIFO's WaiterList; same operations).
 *
 * Policy (docs/api.md "Fair queueing"):
 * 1. Weighted fair queueing by tokens, as start-time fair queueing: a request gets the tag
 *    S = max(V, F_key) and the key's finish tag becomes F_key = S + cost / weight, where V is the
 *    tag of the last granted request. Requests are granted in tag order (ties: arrival). A key that
 *    sent 500 requests has them tagged far ahead; a key that then sends one gets S = V and goes
 *    next. Over time each key with waiting requests gets tokens in proportion to its weight.
 * 2. A key at its tier's `maxConcurrent` on this upstream is skipped until one of its requests ends.
 * 3. Switch-aware: while a model is loaded (running, or granted last), requests for it go first
 *    (in tag order), as long as no request for another model has been passed over for
 *    `switchMaxWaitMs` (counted from its arrival or from the last model switch, whichever is
 *    later); once one has, the longest-waiting such request goes next (a switch). So a mixed queue
 *    does not reload models back and forth (at most one switch per bound), and a request is never
 *    passed over for longer than the bound at a time.
 * Positions are this order as it stands now (1 = granted next); arrivals of other keys may move a
 * request back, as fairness requires. Computing the order is O(n log n); it is done only when a
 * position is asked for or someone subscribed to position updates.
 */
export class FairLine<T extends FairNode> {
  private readonly keys = new Map<string, KeyState>();
  private readonly runningModels = new Map<string, number>();
  private lastModel: string | undefined;
  private lastSwitchAtMs = 0;
  /** Grants whose model differed from the previous grant's (model switches caused). */
  switches = 0;
  private virtualTime = 0;
  private count = 0;
  private subscribers = 0;
  private nextSeq = 0;

  constructor(private readonly opts: FairLineOptions) {}

  get size(): number {
    return this.count;
  }

  /** Requests of `key` waiting now. */
  queuedOf(key: string): number {
    return this.keys.get(key)?.waiting.length ?? 0;
  }

  /** Whether requests for `model` are running now. */
  modelRunning(model: string): boolean {
    return this.runningModels.has(model);
  }

  /** Whether a request of this class could be granted now without breaking the key's concurrency cap. */
  admits(fair: FairClass): boolean {
    return fair.maxConcurrent === 0 || (this.keys.get(fair.key)?.running ?? 0) < fair.maxConcurrent;
  }

  push(node: T, moved: MovedFn<T>): void {
    const k = this.state(node.fair.key);
    node.seq = this.nextSeq++;
    node.tag = Math.max(this.virtualTime, k.lastFinish);
    k.lastFinish = node.tag + Math.max(1, node.fair.cost) / Math.max(1, node.fair.weight);
    k.waiting.push(node);
    node.inList = true;
    this.count++;
    if (node.subscribed) this.subscribers++;
    this.renumber(moved);
  }

  remove(node: T, moved: MovedFn<T>): void {
    if (!node.inList) return;
    const k = this.keys.get(node.fair.key)!;
    const i = k.waiting.indexOf(node);
    k.waiting.splice(i, 1);
    // A request that leaves without a grant gives its virtual time back when it was the key's last.
    if (i === k.waiting.length && !node.granting) k.lastFinish = Math.max(this.virtualTime, node.tag);
    node.inList = false;
    this.count--;
    if (node.subscribed) this.subscribers--;
    this.prune(node.fair.key, k);
    this.renumber(moved);
  }

  /** The request to grant now, or undefined when nobody waits or every waiting key is at its cap. */
  first(): T | undefined {
    return this.plan(1)[0];
  }

  /** Records a grant (fast path or from the line; call before `remove` for a waiting node). */
  granted(fair: FairClass, model: string | undefined, node?: T): void {
    const k = this.state(fair.key);
    k.running++;
    if (node) {
      node.granting = true;
      this.virtualTime = Math.max(this.virtualTime, node.tag);
    }
    if (model !== undefined) {
      this.runningModels.set(model, (this.runningModels.get(model) ?? 0) + 1);
      if (this.lastModel !== undefined && this.lastModel !== model) {
        this.switches++;
        this.lastSwitchAtMs = this.opts.now();
      }
      this.lastModel = model;
    }
  }

  released(fair: FairClass, model: string | undefined): void {
    const k = this.keys.get(fair.key);
    if (k) {
      k.running = Math.max(0, k.running - 1);
      this.prune(fair.key, k);
    }
    if (model !== undefined) {
      const n = (this.runningModels.get(model) ?? 1) - 1;
      if (n > 0) this.runningModels.set(model, n);
      else this.runningModels.delete(model);
    }
  }

  drain(): T[] {
    const out = this.plan(Infinity, true);
    for (const n of out) n.inList = false;
    this.keys.clear();
    this.count = 0;
    this.subscribers = 0;
    return out;
  }

  positionOf(node: T): number | undefined {
    if (!node.inList) return undefined;
    const i = this.plan(Infinity, true).indexOf(node);
    return i < 0 ? undefined : i + 1;
  }

  /** The waiting requests in the order they would be granted now. */
  *[Symbol.iterator](): IterableIterator<T> {
    yield* this.plan(Infinity, true);
  }

  /** Updates cached positions of subscribers and reports those that changed. */
  private renumber(moved: MovedFn<T>): void {
    if (this.subscribers === 0) return;
    let p = 0;
    for (const n of this.plan(Infinity, true)) {
      p++;
      if (n.subscribed && n.position !== p) {
        n.position = p;
        moved(n);
      }
    }
  }

  /**
   * The next `limit` grants as the policy would make them now. For the first one keys at their
   * cap are skipped (unless `all`: then they follow everyone else, as if their running requests
   * had ended); later ones assume the chosen model becomes the loaded one.
   */
  private plan(limit: number, all = false): T[] {
    const eligible: T[] = [];
    const capped: T[] = [];
    for (const k of this.keys.values()) {
      const atCap = k.waiting.length > 0 && k.waiting[0]!.fair.maxConcurrent > 0 && k.running >= k.waiting[0]!.fair.maxConcurrent;
      for (const n of k.waiting) (atCap ? capped : eligible).push(n as T);
    }
    const byTag = (a: T, b: T) => a.tag - b.tag || a.seq - b.seq;
    eligible.sort(byTag);
    const bound = this.opts.switchMaxWaitMs();
    let out: T[];
    if (bound <= 0 || eligible.length < 2) out = eligible.slice(0, limit);
    else out = this.switchAware(eligible, bound, limit);
    if (all) out.push(...capped.sort(byTag));
    return out;
  }

  private switchAware(sorted: T[], bound: number, limit: number): T[] {
    const now = this.opts.now();
    let warm = new Set<string>(this.runningModels.keys());
    if (this.lastModel !== undefined) warm.add(this.lastModel);
    // Passed over for the bound since it arrived or since the last model switch, whichever is later.
    const overdue = sorted.filter((n) => now - Math.max(n.enqueuedAtMs, this.lastSwitchAtMs) >= bound).sort((a, b) => a.enqueuedAtMs - b.enqueuedAtMs || a.seq - b.seq);
    // Per model, its waiters in tag order with a cursor past those already planned.
    const byModel = new Map<string, { list: T[]; i: number }>();
    for (const n of sorted) {
      const m = n.model ?? '';
      const e = byModel.get(m) ?? { list: [], i: 0 };
      e.list.push(n);
      byModel.set(m, e);
    }
    const taken = new Set<T>();
    const headOf = (m: string): T | undefined => {
      const e = byModel.get(m);
      if (!e) return undefined;
      while (e.i < e.list.length && taken.has(e.list[e.i]!)) e.i++;
      return e.list[e.i];
    };
    const out: T[] = [];
    let cursor = 0;
    let od = 0;
    while (out.length < limit && out.length < sorted.length) {
      while (od < overdue.length && (taken.has(overdue[od]!) || warm.has(overdue[od]!.model ?? ''))) od++;
      let pick: T | undefined = od < overdue.length ? overdue[od] : undefined;
      if (!pick) {
        for (const m of warm) {
          const h = headOf(m);
          if (h && (!pick || h.tag < pick.tag || (h.tag === pick.tag && h.seq < pick.seq))) pick = h;
        }
      }
      if (!pick) {
        while (taken.has(sorted[cursor]!)) cursor++;
        pick = sorted[cursor]!;
      }
      taken.add(pick);
      out.push(pick);
      // A (planned) switch restarts the others' bound: no request is overdue right after it.
      if (!warm.has(pick.model ?? '')) od = overdue.length;
      warm = new Set([pick.model ?? '']);
    }
    return out;
  }

  private state(key: string): KeyState {
    let k = this.keys.get(key);
    if (!k) {
      k = { waiting: [], lastFinish: this.virtualTime, running: 0 };
      this.keys.set(key, k);
    }
    return k;
  }

  private prune(key: string, k: KeyState): void {
    if (k.waiting.length === 0 && k.running === 0 && k.lastFinish <= this.virtualTime) this.keys.delete(key);
  }
}
