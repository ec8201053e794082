import { sql, type Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { DatabaseSchema } from '../storage/schema.js';
import type { MessageTokenCount, SessionRecord } from './session-store.js';
import { autoTitle } from './conversation-title.js';

/**
 * The statements behind SqlSessionStore's sessions, conversations, token counts and titles, run
 * inside the store's transactions (SQLite and Postgres alike).
 */

type Db = Kysely<DatabaseSchema>;

/**
 * Creates the session and its conversation if new, reactivates it if archived; returns the
 * conversation id. Two transactions creating the same new session: the second one's session
 * insert waits for the first (Postgres) and then does nothing; it drops its own conversation row
 * and reads the winner's.
 */
export async function ensureIn(trx: Db, id: string, model: string, now: string): Promise<string> {
  const existing = await trx.selectFrom('sessions').select(['conversation_id', 'status']).where('id', '=', id).executeTakeFirst();
  if (existing !== undefined) {
    if (existing.status === 'archived') {
      await trx
        .updateTable('sessions')
        .set({ status: 'active', archived_at: null, updated_at: now, last_active_at: now })
        .where('id', '=', id)
        .execute();
      await trx.updateTable('conversations').set({ archived_at: null, updated_at: now }).where('id', '=', existing.conversation_id).execute();
    }
    return existing.conversation_id;
  }
  return (await createSessionRows(trx, id, model, now)) ?? ensureIn(trx, id, model, now);
}

/**
 * Makes the session active (the row lock on Postgres) and returns its conversation id, and
 * whether this call created it (with the session), creating both rows for a new session. Two
 * transactions creating the same new session: the second one's session insert waits for the
 * first (Postgres) and then does nothing; it drops its own conversation row and takes the
 * winner's. (An archived conversation is un-archived by the caller's counter update.)
 */
export async function activateOrCreate(trx: Db, id: string, model: string, now: string): Promise<{ conversationId: string; created: boolean }> {
  const active = await sql<{ conversation_id: string }>`update sessions set status = 'active', archived_at = null, updated_at = ${now}, last_active_at = ${now} where id = ${id} returning conversation_id`.execute(trx);
  const existing = active.rows[0]?.conversation_id;
  if (existing !== undefined) return { conversationId: existing, created: false };
  const conversationId = await createSessionRows(trx, id, model, now);
  return conversationId === undefined ? activateOrCreate(trx, id, model, now) : { conversationId, created: true };
}

/**
 * Inserts a new session and its conversation; returns the conversation id, or undefined when a
 * concurrent transaction created the session first (its session insert waited for that one on
 * Postgres and did nothing): this transaction's conversation row is then dropped again.
 */
async function createSessionRows(trx: Db, id: string, model: string, now: string): Promise<string | undefined> {
  // UUIDv7 (RFC 9562): ids in creation order, so each new conversation's entries land on the last
  // page of the three indexes keyed by it (conversations, sessions.conversation_id, messages'
  // (conversation_id, seq)) instead of a random page each, which a commit writes whole to the WAL.
  // Measured in bench/cell.mjs gap-500: COMMIT 107 against 130 µs, the turn's message insert 44
  // against 57 µs. A v7 id carries its creation time and about 73 random bits (42 fresh, plus a
  // counter seeded at random each millisecond); it is a name, not a credential (access goes by
  // the session's owner key). Session ids Parley mints stay v4.
  const conversationId = uuidv7();
  await sql`insert into conversations (id, model, created_at, updated_at) values (${conversationId}, ${model}, ${now}, ${now})`.execute(trx);
  const inserted = await sql<{ id: string }>`insert into sessions (id, conversation_id, status, created_at, updated_at, last_active_at) values (${id}, ${conversationId}, 'active', ${now}, ${now}, ${now}) on conflict (id) do nothing returning id`.execute(trx);
  if (inserted.rows.length > 0) return conversationId;
  await sql`delete from conversations where id = ${conversationId}`.execute(trx);
  return undefined;
}

/** Token counts of several messages of one conversation in one statement. */
export async function setTokens(trx: Db, conversationId: string, counts: MessageTokenCount[]): Promise<void> {
  const tokens = sql.join(counts.map((c) => sql`when ${c.id} then cast(${c.tokens} as integer)`), sql` `);
  const exact = sql.join(counts.map((c) => sql`when ${c.id} then cast(${c.exact ? 1 : 0} as integer)`), sql` `);
  const ids = sql.join(counts.map((c) => sql`${c.id}`));
  await sql`update messages set tokens = case id ${tokens} end, tokens_exact = case id ${exact} end where conversation_id = ${conversationId} and id in (${ids})`.execute(trx);
}

/** Titles an untitled conversation from its first user message (the first exchange completed). */
export async function setAutoTitle(trx: Db, conversationId: string): Promise<void> {
  const conversation = await trx.selectFrom('conversations').select('title').where('id', '=', conversationId).executeTakeFirst();
  if (conversation === undefined || conversation.title !== null) return;
  const first = await trx
    .selectFrom('messages')
    .select('content')
    .where('conversation_id', '=', conversationId)
    .where('role', '=', 'user')
    .orderBy('seq')
    .limit(1)
    .executeTakeFirst();
  const title = first === undefined ? null : autoTitle(first.content);
  if (title !== null) await trx.updateTable('conversations').set({ title }).where('id', '=', conversationId).where('title', 'is', null).execute();
}

export async function readSession(db: Db, id: string): Promise<SessionRecord | undefined> {
  const row = await db
    .selectFrom('sessions')
    .innerJoin('conversations', 'conversations.id', 'sessions.conversation_id')
    .select([
      'sessions.id',
      'sessions.conversation_id',
      'sessions.status',
      'sessions.created_at',
      'sessions.updated_at',
      'sessions.last_active_at',
      'sessions.archived_at',
      'conversations.title',
      'conversations.model',
      'conversations.message_count',
    ])
    .where('sessions.id', '=', id)
    .executeTakeFirst();
  if (row === undefined) return undefined;
  return {
    id: row.id,
    conversationId: row.conversation_id,
    title: row.title,
    model: row.model,
    status: row.status,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastActiveAt: row.last_active_at,
    archivedAt: row.archived_at,
    messageCount: Number(row.message_count),
  };
}
