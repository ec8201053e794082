/**
 * The storage contract for sessions and their messages. One interface, two dialects
 * (SQLite via better-sqlite3, Postgres via pg), both behind Kysely: see `sql-session-store.ts`.
 *
 * A session is the conversation seen from `/api/chat` (`session_id`); one session has exactly one
 * conversation row. Messages are ordered by `seq` (1, 2, 3, … within a conversation).
 * Timestamps are ISO-8601 UTC strings with milliseconds (`2026-11-21T17:22:55.123Z`).
 */

export type MessageStatus = 'complete' | 'incomplete';
export type SessionStatus = 'active' | 'archived';

/** A message as a client sent it or the model produced it (Ollama message object, reference §1.2). */
export interface MessageInput {
  role: string;
  content: string;
  thinking?: string | undefined;
  images?: string[] | undefined;
  tool_calls?: unknown[] | undefined;
  tool_name?: string | undefined;
  tool_call_id?: string | undefined;
}

/** Upstream figures for one reply (all durations in nanoseconds, as Ollama reports them). */
export interface ReplyMetrics {
  doneReason: string | null;
  promptTokens: number | null;
  completionTokens: number | null;
  totalDurationNs: number | null;
  loadDurationNs: number | null;
  promptEvalDurationNs: number | null;
  evalDurationNs: number | null;
}

export interface StoredMessage extends MessageInput {
  id: number;
  sessionId: string;
  seq: number;
  /** Model that produced (assistant) or received (others) the message. */
  model: string | null;
  status: MessageStatus;
  metrics: ReplyMetrics | null;
  /** Prompt tokens the message costs (issue 4); null/absent until counted. */
  tokens?: number | null | undefined;
  /** True when `tokens` comes from the upstream's own counts, false for an estimate. */
  tokensExact?: boolean | undefined;
  createdAt: string;
  updatedAt: string;
}

export interface SessionRecord {
  id: string;
  conversationId: string;
  title: string | null;
  /** Model of the latest turn. */
  model: string | null;
  status: SessionStatus;
  createdAt: string;
  updatedAt: string;
  lastActiveAt: string;
  archivedAt: string | null;
  messageCount: number;
}

export interface BeginTurnInput {
  sessionId: string;
  model: string;
  /** The new messages the client sent this turn, in order. */
  messages: MessageInput[];
  now: string;
}

/** What `beginTurn` stored. */
export interface BegunTurn {
  sessionId: string;
  model: string;
  /** The new messages as given to `beginTurn`. */
  messages: MessageInput[];
  /** The `incomplete` assistant placeholder. */
  assistantMessageId: number;
  /** Its seq; the new messages have the seqs right before it. */
  assistantSeq: number;
  /** Ids of the turn's new messages, in order (the placeholder not included). */
  messageIds: number[];
  conversationId: string;
  /** The conversation's `message_count` after the turn's messages were added. */
  messageCount: number;
}

/** What `recordTurn` stored: the turn as `beginTurn` returns it, and its final state. */
export interface RecordedTurn {
  turn: BegunTurn;
  final: CompleteTurnInput;
}

/** A message's prompt-token count to store (issue 4: exact from the upstream's figures, or an estimate). */
export interface MessageTokenCount {
  id: number;
  tokens: number;
  exact: boolean;
}

export interface CompleteTurnInput {
  status: MessageStatus;
  content: string;
  thinking?: string | undefined;
  toolCalls?: unknown[] | undefined;
  metrics: ReplyMetrics | null;
  now: string;
  /** Token counts of the turn's messages (reply included), stored in the same transaction. */
  tokens?: MessageTokenCount[] | undefined;
  /**
   * The automatic title (`autoTitle` of the conversation's first user message) when the caller
   * knows it: set only if the conversation has no title and the turn is complete. Undefined: the
   * store looks the first user message up itself.
   */
  titleIfUntitled?: string | null | undefined;
}

/** What identifies the state of a session's stored history (see `historyVersion`). */
export interface HistoryVersion {
  conversationId: string;
  messageCount: number;
  updatedAt: string;
}

export interface SessionStore {
  /** The session, or undefined if the id was never stored. */
  getSession(id: string): Promise<SessionRecord | undefined>;
  /** Creates the session (and its conversation) if new; reactivates it if archived. Idempotent. */
  ensureSession(id: string, model: string, now: string): Promise<SessionRecord>;
  /** Every message of the session in `seq` order (complete and incomplete). */
  listMessages(sessionId: string): Promise<StoredMessage[]>;
  /**
   * In one transaction: appends the turn's new messages and an empty assistant placeholder with
   * status `incomplete`; returns the ids. The session's `lastActiveAt` moves to `now`; a new
   * session is created, an archived one reactivated.
   */
  beginTurn(input: BeginTurnInput): Promise<BegunTurn>;
  /** Saves the reply text so far; the message stays `incomplete`. */
  savePartial(assistantMessageId: number, content: string, thinking: string | undefined, now: string): Promise<void>;
  /**
   * In one transaction: the final state of the assistant message (complete, or incomplete with
   * what arrived), the turn's token counts, the conversation's `updated_at` and, for a complete
   * turn of an untitled conversation, its automatic title. Idempotent (safe to retry).
   */
  completeTurn(assistantMessageId: number, input: CompleteTurnInput): Promise<void>;
  /**
   * `beginTurn` and `completeTurn` in one transaction, for a turn whose reply ended before any
   * of it had to be stored (a `stream:false` reply within one partial-save interval): `finalOf`
   * makes the final state from the turn's ids, which may be provisional (negative for the new
   * messages, 0 for the reply) and are replaced by the stored ones in the result. One commit
   * instead of two, and fewer statements.
   */
  recordTurn(input: BeginTurnInput, finalOf: (turn: BegunTurn) => CompleteTurnInput): Promise<RecordedTurn>;
  /**
   * The session's conversation id, message count and `updated_at` (one indexed read), or
   * undefined for an unknown session. Every write of a session's messages (`beginTurn`,
   * `completeTurn`) moves `updated_at` and/or the count, so an unchanged version means an
   * unchanged history: a cached copy is checked with it (another process may write too).
   */
  historyVersion(sessionId: string): Promise<HistoryVersion | undefined>;
  /** Marks sessions whose lastActiveAt < `idleBefore` as archived; returns how many. */
  archiveIdle(idleBefore: string, now: string): Promise<number>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
