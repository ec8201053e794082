import { sql, type Kysely } from 'kysely';
import { ParleyError } from '../errors/parley-error.js';
import { writeStatements, type Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import type { HistoryVersion } from './session-store.js';
import { storageUnavailable } from '../storage/storage-error.js';

/** Who asks, as far as ownership goes (an API key's id and whether it is an admin key); undefined = anonymous. */
export interface AccessCaller {
  keyId: string;
  admin: boolean;
}

/** What ownership decisions need to know about one session id. */
export interface SessionAccessState {
  /** A session row exists. */
  exists: boolean;
  /** Set while its conversation is soft-deleted. */
  deletedAt: string | null;
  /** The API key that created it (`session_owners`), if any. */
  ownerKeyId: string | undefined;
  /** Its stored history's version as of this read (SessionStore.historyVersion); undefined when no session row exists. */
  history: HistoryVersion | undefined;
}

/**
 * Who may use which session (docs/api.md "Ownership"). Sessions, conversations and threads belong
 * to the API key that created them (`session_owners`, first claim wins). The rules:
 * - anonymous callers (auth off, or auto without keys): no checks, as before keys existed;
 * - an admin key may use any session;
 * - any other key sees only its own: another key's session, or one created without a key, is
 *   answered exactly like an unknown id (404), so ids do not leak;
 * - a key that names an id nobody uses yet (a new session on /api/chat, POST /api/sessions) claims it.
 * A soft-deleted conversation is refused (410) to everyone who may see it, until it is restored.
 */
export class SessionAccess {
  private readonly db: Kysely<DatabaseSchema>;

  constructor(
    private readonly database: Database,
    private readonly now: () => Date,
  ) {
    this.db = database.db;
  }

  /**
   * One read: the session (and its conversation's `deleted_at`) and its owner, which may exist
   * without the other (an id claimed before its first turn).
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE
   */
  async state(sessionId: string): Promise<SessionAccessState> {
    try {
      const r = await sql<{ found: number | boolean; deleted_at: string | null; key_id: string | null; conversation_id: string | null; message_count: number | string | null; updated_at: string | null }>`select sessions.id is not null as found, conversations.deleted_at, session_owners.key_id, conversations.id as conversation_id, conversations.message_count, conversations.updated_at
from (select cast(${sessionId} as text) as id) as asked
left join sessions on sessions.id = asked.id
left join conversations on conversations.id = sessions.conversation_id
left join session_owners on session_owners.session_id = asked.id`.execute(this.db);
      const row = r.rows[0];
      const history = row?.conversation_id == null || row.updated_at == null ? undefined : { conversationId: row.conversation_id, messageCount: Number(row.message_count), updatedAt: row.updated_at };
      return { exists: Boolean(row?.found), deletedAt: row?.deleted_at ?? null, ownerKeyId: row?.key_id ?? undefined, history };
    } catch (e) {
      throw storageUnavailable('sessionAccess', e);
    }
  }

  /** Whether `caller` may see a session in `state` (an id nobody uses yet counts as visible: it can be claimed). */
  static visible(state: SessionAccessState, caller: AccessCaller | undefined): boolean {
    if (caller === undefined || caller.admin) return true;
    if (state.ownerKeyId !== undefined) return state.ownerKeyId === caller.keyId;
    return !state.exists;
  }

  /**
   * Before reading an existing session (GET /api/sessions/:id, every /api/conversations/:id route).
   * @throws `notFound()` when it does not exist or `caller` may not see it;
   *   PARLEY_ERR_CONVERSATION_DELETED (410) when deleted, unless `allowDeleted`
   */
  async read(sessionId: string, caller: AccessCaller | undefined, notFound: () => ParleyError, allowDeleted = false): Promise<SessionAccessState> {
    const state = await this.state(sessionId);
    if (!state.exists || !SessionAccess.visible(state, caller)) throw notFound();
    if (!allowDeleted && state.deletedAt !== null) throw deletedError(sessionId, state.deletedAt);
    return state;
  }

  /**
   * Before a chat continues or starts session `sessionId` (/api/chat, POST /api/sessions): claims
   * an unused id for a keyed caller. Returns what it read (the pipeline reuses the history version).
   * @throws ParleyError PARLEY_ERR_SESSION_NOT_FOUND (404, `session 'x' not found`) when it is
   *   another key's (or was created without a key and the caller has one);
   *   PARLEY_ERR_CONVERSATION_DELETED (410) when its conversation is deleted
   */
  async forChat(sessionId: string, caller: AccessCaller | undefined): Promise<SessionAccessState> {
    const state = await this.state(sessionId);
    const notFound = () => new ParleyError('PARLEY_ERR_SESSION_NOT_FOUND', `session '${sessionId}' not found`);
    if (!SessionAccess.visible(state, caller)) throw notFound();
    if (state.deletedAt !== null) throw deletedError(sessionId, state.deletedAt);
    if (caller === undefined || state.ownerKeyId !== undefined || state.exists) return state;
    // Two keys racing for a new id: the first claim wins, the other is told it does not exist.
    if ((await this.claim(sessionId, caller.keyId)) !== caller.keyId) throw notFound();
    return { ...state, ownerKeyId: caller.keyId };
  }

  /**
   * Records `keyId` as the owner of `sessionId` unless it has one.
   * @returns the owner afterwards
   * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE
   */
  async claim(sessionId: string, keyId: string): Promise<string | undefined> {
    try {
      // One statement when the id is free (RETURNING gives the row only when it was inserted),
      // committed with the other writes of this moment (group commit on SQLite).
      return await writeStatements(this.database, async (db) => {
        const inserted = await sql<{ key_id: string }>`insert into session_owners (session_id, key_id, created_at) values (${sessionId}, ${keyId}, ${this.now().toISOString()}) on conflict (session_id) do nothing returning key_id`.execute(db);
        if (inserted.rows[0] !== undefined) return inserted.rows[0].key_id;
        const owner = await sql<{ key_id: string }>`select key_id from session_owners where session_id = ${sessionId}`.execute(db);
        return owner.rows[0]?.key_id;
      });
    } catch (e) {
      throw storageUnavailable('claimSession', e);
    }
  }
}

/** The 410 of a soft-deleted conversation, the same on every API (`PARLEY_ERR_CONVERSATION_DELETED`). */
export function deletedError(id: string, deletedAt: string): ParleyError {
  return new ParleyError('PARLEY_ERR_CONVERSATION_DELETED', `conversation '${id}' was deleted at ${deletedAt}; POST /api/conversations/${id}/restore brings it back`);
}
