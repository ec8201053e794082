/**
 * The waiting line of an admission queue: a doubly linked list in arrival order, plus a second
 * linked list threaded through only the nodes that subscribed to position updates.
 *
 * Costs: push, remove (any node) and first are O(1), plus O(k) where k is the number of
 * subscribers whose position the change moved (each of them gets one `moved` call, so the work is
 * never more than the notifications themselves). Nobody subscribed → every operation is O(1).
 * `positionOf` is O(1) for a subscriber (cached) and O(position) for anyone else.
 *
 * Internal to src/queue; AdmissionQueue is the public face.
 */
export class WaiterNode {
  /** @internal links in arrival order */
  prev: WaiterNode | undefined;
  /** @internal */
  next: WaiterNode | undefined;
  /** @internal links among subscribers only */
  subPrev: WaiterNode | undefined;
  /** @internal */
  subNext: WaiterNode | undefined;
  /** @internal arrival number, increasing */
  seq = 0;
  /** 1-based position among waiters; kept current only for subscribers. */
  position = 0;
  /** True while the node is in a list. */
  inList = false;

  /** @param subscribed whether this waiter wants position updates (its position is then cached). */
  constructor(readonly subscribed: boolean) {}
}

/** Called once for each subscriber whose position changed (also for a new subscriber at push). */
export type MovedFn<T> = (node: T) => void;

export class WaiterList<T extends WaiterNode> {
  private head: WaiterNode | undefined;
  private tail: WaiterNode | undefined;
  private subTail: WaiterNode | undefined;
  private count = 0;
  private nextSeq = 0;

  /** Number of waiters. */
  get size(): number {
    return this.count;
  }

  /** The longest-waiting node, or undefined when empty. */
  first(): T | undefined {
    return this.head as T | undefined;
  }

  /** Appends `node` at the tail; its position is the new size. */
  push(node: T, moved: MovedFn<T>): void {
    node.seq = this.nextSeq++;
    node.prev = this.tail;
    node.next = undefined;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    node.inList = true;
    this.count++;
    node.position = this.count;
    if (node.subscribed) {
      node.subPrev = this.subTail;
      node.subNext = undefined;
      if (this.subTail) this.subTail.subNext = node;
      this.subTail = node;
      moved(node);
    }
  }

  /** Unlinks `node` (no-op if it is not in the list); subscribers behind it move up by one. */
  remove(node: T, moved: MovedFn<T>): void {
    if (!node.inList) return;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    node.inList = false;
    this.count--;
    if (node.subscribed) {
      if (node.subPrev) node.subPrev.subNext = node.subNext;
      if (node.subNext) node.subNext.subPrev = node.subPrev;
      else this.subTail = node.subPrev;
      node.subPrev = node.subNext = undefined;
    }
    // Only subscribers that arrived after `node` move; walk them from the back.
    for (let s = this.subTail; s && s.seq > node.seq; s = s.subPrev) {
      s.position--;
      moved(s as T);
    }
  }

  /** Empties the list without any `moved` calls and returns the nodes in order. */
  drain(): T[] {
    const out = [...this];
    for (const n of out) {
      n.prev = n.next = n.subPrev = n.subNext = undefined;
      n.inList = false;
    }
    this.head = this.tail = this.subTail = undefined;
    this.count = 0;
    return out;
  }

  /** 1-based position of `node`, or undefined when it is not in the list. */
  positionOf(node: T): number | undefined {
    if (!node.inList) return undefined;
    if (node.subscribed) return node.position;
    let p = 1;
    for (let n = this.head; n && n !== node; n = n.next) p++;
    return p;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let n = this.head; n; n = n.next) yield n as T;
  }
}
