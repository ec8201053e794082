import { randomUUID } from 'node:crypto';
import { ParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { BegunTurn, CompleteTurnInput, HistoryVersion, MessageInput, SessionRecord, SessionStore, StoredMessage } from './session-store.js';
import { TurnRecorder, type TurnObserver } from './turn-recorder.js';
import { HistoryCache, messageBytes, sameVersion } from './history-cache.js';
import { autoTitle } from './conversation-title.js';

/** Default cap of the in-memory history cache, in bytes (estimated heap). */
export const DEFAULT_HISTORY_CACHE_BYTES = 16 * 1024 * 1024;
const NO_MESSAGES: readonly StoredMessage[] = Object.freeze([]);

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The value of `session_id` (or `X-Session-Id`) that asks Parley to mint a new id. */
export const MINT_SESSION_ID = 'new';

export interface SessionServiceOptions {
  /** Idle time after which a session is archived, in ms. */
  idleExpiryMs: number;
  sweepIntervalMs: number;
  partialSaveIntervalMs: number;
  now: () => Date;
  /** Cap of the history cache in estimated heap bytes; 0 = no cache. Default 16 MiB. */
  historyCacheMaxBytes?: number | undefined;
}

/**
 * Server-side conversation history keyed by `session_id` (issue: sessions). The client sends only
 * its new messages; `history()` gives what to prepend; a `TurnRecorder` stores the turn.
 */
export class SessionService {
  private sweeper: NodeJS.Timeout | undefined;
  /**
   * Sendable history per session, checked against `store.historyVersion` before each use (one
   * indexed read instead of every message), updated by this process's turns.
   */
  readonly historyCache: HistoryCache;
  private readonly observer: TurnObserver;

  constructor(
    readonly store: SessionStore,
    private readonly opts: SessionServiceOptions,
    private readonly logger: Logger,
  ) {
    this.historyCache = new HistoryCache(opts.historyCacheMaxBytes ?? DEFAULT_HISTORY_CACHE_BYTES);
    this.observer = {
      // Until the turn completes its placeholder exists: what is cached may no longer be current.
      begun: (turn) => {
        const e = this.historyCache.peek(turn.sessionId);
        if (e !== undefined && e.version.conversationId !== turn.conversationId) this.historyCache.delete(turn.sessionId);
      },
      completed: (turn, beginNow, final) => this.turnCompleted(turn, beginNow, final),
    };
  }

  /**
   * Validates a client-given id, or mints one for `"new"`.
   * @throws ParleyError PARLEY_ERR_SESSION_INVALID_ID (400) for anything but 1-128 chars of [A-Za-z0-9._:-]
   */
  resolveId(raw: unknown): string {
    if (raw === MINT_SESSION_ID) return this.mintId();
    if (typeof raw !== 'string' || !SESSION_ID.test(raw)) {
      throw new ParleyError('PARLEY_ERR_SESSION_INVALID_ID', 'invalid session_id: use 1-128 characters from A-Z a-z 0-9 . _ : -, or "new" to start a session');
    }
    return raw;
  }

  mintId(): string {
    return randomUUID();
  }

  /**
   * The stored conversation to send ahead of the new messages, in order. Assistant replies that
   * never completed are left out (they are kept and marked in storage, but not passed off to the
   * model as something it said).
   */
  async history(sessionId: string): Promise<MessageInput[]> {
    return (await this.sendable(sessionId)).map(toWireMessage);
  }

  /**
   * The stored messages `history()` is made of (ids, seq, token counts), in order. `known`: the
   * history version the caller read just before (SessionAccess.forChat; null = no such session),
   * instead of reading it again.
   */
  async sendable(sessionId: string, known?: HistoryVersion | null): Promise<StoredMessage[]> {
    const cache = this.historyCache;
    const version = known === undefined ? await this.store.historyVersion(sessionId) : (known ?? undefined);
    if (version === undefined) {
      cache.delete(sessionId);
      return [];
    }
    const hit = cache.get(sessionId);
    if (hit !== undefined && sameVersion(hit.version, version)) return hit.messages.slice();
    const stored = (await this.store.listMessages(sessionId)).filter((m) => !(m.role === 'assistant' && m.status !== 'complete'));
    // A write between the two reads makes the entry newer than its version: the next check misses.
    cache.set(sessionId, version, stored.length === 0 ? NO_MESSAGES : stored);
    return stored.slice();
  }

  recorder(sessionId: string, model: string, newMessages: MessageInput[]): TurnRecorder {
    return new TurnRecorder(this.store, sessionId, model, newMessages, this.opts.partialSaveIntervalMs, this.opts.now, this.logger, this.observer, this.titleFor(sessionId, newMessages));
  }

  /** Empties the history cache (the memory guardian's evictor). */
  evictCache(): void {
    this.historyCache.clear();
  }

  /** Creates an empty session now (for `POST /api/sessions`). */
  async create(id: string, model: string): Promise<SessionRecord> {
    const record = await this.store.ensureSession(id, model, this.opts.now().toISOString());
    // A new (or just reactivated) session's conversation was written with the session's timestamp.
    if (record.messageCount === 0) this.historyCache.set(id, { conversationId: record.conversationId, messageCount: 0, updatedAt: record.updatedAt }, NO_MESSAGES);
    return record;
  }

  /**
   * The automatic title when the cached history tells the conversation's first user message
   * (undefined otherwise: the store looks it up when it needs it).
   */
  private titleFor(sessionId: string, newMessages: MessageInput[]): string | null | undefined {
    const e = this.historyCache.peek(sessionId);
    if (e === undefined) return undefined;
    const first = e.messages.find((m) => m.role === 'user') ?? newMessages.find((m) => m.role === 'user');
    return first === undefined ? undefined : autoTitle(first.content);
  }

  /** The turn is stored: the cached history follows when it was current before the turn, else it goes. */
  private turnCompleted(turn: BegunTurn, beginNow: string, final: CompleteTurnInput): void {
    const cache = this.historyCache;
    const added = turn.messageIds.length + 1;
    // A conversation that was empty before this turn (a new session) starts its entry here.
    const e = cache.peek(turn.sessionId) ?? (turn.messageCount === added ? { version: { conversationId: turn.conversationId, messageCount: 0, updatedAt: '' }, messages: NO_MESSAGES, bytes: 160 } : undefined);
    if (e === undefined) return;
    if (e.version.conversationId !== turn.conversationId || e.version.messageCount !== turn.messageCount - added) {
      cache.delete(turn.sessionId);
      return;
    }
    const tokens = new Map((final.tokens ?? []).map((t) => [t.id, t]));
    const firstSeq = turn.assistantSeq - turn.messageIds.length;
    const counted = (m: StoredMessage): StoredMessage => {
      const t = tokens.get(m.id);
      if (t !== undefined) {
        m.tokens = t.tokens;
        m.tokensExact = t.exact;
      }
      return m;
    };
    const next = e.messages.slice();
    let bytes = e.bytes;
    turn.messages.forEach((input, i) => {
      const m: StoredMessage = counted({ ...storedInput(input), id: turn.messageIds[i]!, sessionId: turn.sessionId, seq: firstSeq + i, model: turn.model, status: 'complete', metrics: null, createdAt: beginNow, updatedAt: beginNow });
      next.push(m);
      bytes += messageBytes(m);
    });
    if (final.status === 'complete') {
      const reply: StoredMessage = counted({ id: turn.assistantMessageId, sessionId: turn.sessionId, seq: turn.assistantSeq, role: 'assistant', content: final.content, model: turn.model, status: 'complete', metrics: metricsOrNull(final), createdAt: beginNow, updatedAt: final.now });
      if (final.thinking !== undefined) reply.thinking = final.thinking;
      if (final.toolCalls !== undefined) reply.tool_calls = final.toolCalls;
      next.push(reply);
      bytes += messageBytes(reply);
    }
    cache.set(turn.sessionId, { conversationId: turn.conversationId, messageCount: turn.messageCount, updatedAt: final.now }, next, bytes);
  }

  /** The session with every stored message, or undefined. */
  async get(id: string): Promise<{ session: SessionRecord; messages: StoredMessage[] } | undefined> {
    const session = await this.store.getSession(id);
    if (!session) return undefined;
    return { session, messages: await this.store.listMessages(id) };
  }

  /** Archives sessions idle longer than idleExpiryMs; returns how many. */
  async sweep(): Promise<number> {
    const now = this.opts.now();
    const n = await this.store.archiveIdle(new Date(now.getTime() - this.opts.idleExpiryMs).toISOString(), now.toISOString());
    if (n > 0) this.logger.info({ archived: n }, 'session.archived_idle');
    return n;
  }

  startSweeper(): void {
    if (this.sweeper || this.opts.sweepIntervalMs === 0) return;
    this.sweeper = setInterval(() => {
      this.sweep().catch((e: unknown) => this.logger.error({ err: e }, 'session.sweep_failed'));
    }, this.opts.sweepIntervalMs);
    this.sweeper.unref();
  }

  stopSweeper(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/** A client's message as `toStoredMessage` returns it: absent (or null) optional fields left out. */
function storedInput(m: MessageInput): MessageInput {
  const out: MessageInput = { role: m.role, content: m.content };
  if (m.thinking != null) out.thinking = m.thinking;
  if (m.images != null) out.images = m.images;
  if (m.tool_calls != null) out.tool_calls = m.tool_calls;
  if (m.tool_name != null) out.tool_name = m.tool_name;
  if (m.tool_call_id != null) out.tool_call_id = m.tool_call_id;
  return out;
}

function metricsOrNull(final: CompleteTurnInput): StoredMessage['metrics'] {
  const m = final.metrics;
  return m === null || Object.values(m).every((v) => v === null) ? null : m;
}

/** A stored message as an Ollama message object (only the fields a model reads). */
export function toWireMessage(m: StoredMessage): MessageInput {
  const out: MessageInput = { role: m.role, content: m.content };
  if (m.thinking) out.thinking = m.thinking;
  if (m.images && m.images.length > 0) out.images = m.images;
  if (m.tool_calls && m.tool_calls.length > 0) out.tool_calls = m.tool_calls;
  if (m.tool_name) out.tool_name = m.tool_name;
  if (m.tool_call_id) out.tool_call_id = m.tool_call_id;
  return out;
}
