import type { HistoryVersion, StoredMessage } from './session-store.js';

/** One session's sendable history as of `version`. Read-only for everyone but the cache. */
export interface CachedHistory {
  readonly version: HistoryVersion;
  readonly messages: readonly StoredMessage[];
  readonly bytes: number;
}

/** Rough heap bytes of a cached message: fixed object overhead plus its strings (UTF-16). */
const MESSAGE_OVERHEAD_BYTES = 320;
const ENTRY_OVERHEAD_BYTES = 160;

export function messageBytes(m: StoredMessage): number {
  let n = MESSAGE_OVERHEAD_BYTES + 2 * (m.content.length + (m.thinking?.length ?? 0));
  if (m.images) for (const i of m.images) n += 2 * i.length;
  if (m.tool_calls) n += 2 * JSON.stringify(m.tool_calls).length;
  return n;
}

/**
 * A bytes-capped LRU of session histories (SessionService), so a turn checks its history with one
 * indexed read (`historyVersion`) instead of selecting every message. Entries are only ever used
 * after their version matched the database's; they are replaced on every write of the session in
 * this process and dropped when the process cannot tell what the write did. `clear()` is the
 * memory guardian's evictor.
 */
export class HistoryCache {
  private readonly entries = new Map<string, CachedHistory>();
  private total = 0;

  constructor(private readonly maxBytes: number) {}

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry (and marks it recently used). */
  get(sessionId: string): CachedHistory | undefined {
    const e = this.entries.get(sessionId);
    if (e !== undefined) {
      this.entries.delete(sessionId);
      this.entries.set(sessionId, e);
    }
    return e;
  }

  /** Peeks without touching recency. */
  peek(sessionId: string): CachedHistory | undefined {
    return this.entries.get(sessionId);
  }

  set(sessionId: string, version: HistoryVersion, messages: readonly StoredMessage[], bytes?: number): void {
    this.delete(sessionId);
    if (this.maxBytes <= 0) return;
    const size = bytes ?? ENTRY_OVERHEAD_BYTES + messages.reduce((n, m) => n + messageBytes(m), 0);
    if (size > this.maxBytes) return;
    this.entries.set(sessionId, { version, messages, bytes: size });
    this.total += size;
    while (this.total > this.maxBytes) {
      const oldest = this.entries.keys().next().value as string;
      this.delete(oldest);
    }
  }

  delete(sessionId: string): void {
    const e = this.entries.get(sessionId);
    if (e === undefined) return;
    this.entries.delete(sessionId);
    this.total -= e.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.total = 0;
  }
}

export function sameVersion(a: HistoryVersion, b: HistoryVersion): boolean {
  return a.conversationId === b.conversationId && a.messageCount === b.messageCount && a.updatedAt === b.updatedAt;
}
