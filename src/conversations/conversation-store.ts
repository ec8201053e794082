import type { SessionStatus, StoredMessage } from './session-store.js';

/**
 * The storage contract of the conversations API (issue 4, item 4). A conversation is a session
 * seen from `/api/conversations`: its id is the session id, and it is the same `sessions` row and
 * `conversations` row `/api/chat` uses (`SessionStore`). Timestamps are ISO-8601 UTC strings.
 */
export interface ConversationRecord {
  /** The session id (also what `/api/chat` takes as `session_id`). */
  id: string;
  title: string | null;
  /** Model of the latest turn (or the one given at creation). */
  model: string | null;
  status: SessionStatus;
  createdAt: string;
  updatedAt: string;
  archivedAt: string | null;
  /** Set while soft-deleted (hidden from lists, 410 on direct access, restorable). */
  deletedAt: string | null;
  messageCount: number;
}

/** Token figures summed over the stored assistant messages (what the upstream reported). */
export interface ConversationTotals {
  promptTokens: number;
  completionTokens: number;
}

/** Position in the newest-first list: the last item of the previous page. */
export interface ConversationCursor {
  updatedAt: string;
  id: string;
}

export interface ListConversationsQuery {
  /** Rows to return at most (the store does not cap it). */
  limit: number;
  after?: ConversationCursor | undefined;
  /** Case-insensitive substring of the title. */
  titleContains?: string | undefined;
  /** Only conversations this API key owns (`session_owners`); undefined = all. */
  ownerKeyId?: string | undefined;
}

export interface ListMessagesQuery {
  limit: number;
  /** `asc`: oldest first, messages with seq > `afterSeq`; `desc`: newest first, seq < `beforeSeq`. */
  order: 'asc' | 'desc';
  /** Exclusive bound in `order` direction (seq of the last message of the previous page). */
  fromSeq?: number | undefined;
}

export interface ConversationStore {
  /** The conversation (deleted or not) with its token totals, or undefined for an unknown id. */
  getConversation(id: string): Promise<{ conversation: ConversationRecord; totals: ConversationTotals } | undefined>;
  /** Conversations not deleted, newest `updatedAt` first (ties: id descending). */
  listConversations(query: ListConversationsQuery): Promise<ConversationRecord[]>;
  /** One page of a conversation's messages by `seq`. */
  listMessages(id: string, query: ListMessagesQuery): Promise<StoredMessage[]>;
  /** Sets the title (null: untitled again, so the next completed exchange titles it). */
  setTitle(id: string, title: string | null, now: string): Promise<void>;
  /** Soft-deletes (`deletedAt` = now) or restores (`deletedAt` = null). */
  setDeleted(id: string, deletedAt: string | null, now: string): Promise<void>;
}
