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

export interface CompleteTurnInput {
  status: MessageStatus;
  content: string;
  thinking?: string | undefined;
  toolCalls?: unknown[] | undefined;
  metrics: ReplyMetrics | null;
  now: string;
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
   * status `incomplete`; returns the placeholder's id. The session's `lastActiveAt` moves to `now`.
   */
  beginTurn(input: BeginTurnInput): Promise<{ assistantMessageId: number }>;
  /** Saves the reply text so far; the message stays `incomplete`. */
  savePartial(assistantMessageId: number, content: string, thinking: string | undefined, now: string): Promise<void>;
  /** Final state of the assistant message (complete, or incomplete with what arrived). */
  completeTurn(assistantMessageId: number, input: CompleteTurnInput): Promise<void>;
  /** Marks sessions whose lastActiveAt < `idleBefore` as archived; returns how many. */
  archiveIdle(idleBefore: string, now: string): Promise<number>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
