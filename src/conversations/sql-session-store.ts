import { randomUUID } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { ParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import type { Database } from '../storage/database.js';
import type { DatabaseSchema, NewMessageRow } from '../storage/schema.js';
import { storageUnavailable } from '../storage/storage-error.js';
import type { BeginTurnInput, CompleteTurnInput, SessionRecord, SessionStore, StoredMessage } from './session-store.js';
import { inputColumns, toStoredMessage } from './sql-session-rows.js';
import { autoTitle } from './conversation-title.js';

type Db = Kysely<DatabaseSchema>;

/** Rows per multi-row insert: 23 columns × 200 stays far below SQLite's 32766 bound parameters. */
const INSERT_CHUNK_ROWS = 200;
/** Ids per `in (…)` list, for the same reason. */
const IN_LIST_CHUNK = 500;

/**
 * `SessionStore` over SQLite or Postgres (see `storage/database.ts`); the tables must be migrated
 * (`storage/migrations.ts`). Every database failure is thrown as ParleyError
 * PARLEY_ERR_STORAGE_UNAVAILABLE (driver error as `cause`, logged here) and nothing partial is
 * written: each method is one statement or one transaction.
 *
 * Concurrency: turns of one session are serialised by the row lock `beginTurn` takes on the
 * session (Postgres); SQLite runs one write transaction at a time. Either way `seq` stays unique
 * and contiguous.
 *
 * `close()` closes the `Database` handed in (idempotent): the store owns it.
 */
export class SqlSessionStore implements SessionStore {
  private readonly database: Database;
  private readonly db: Db;
  private readonly logger: Logger | undefined;

  constructor(database: Database, logger?: Logger) {
    this.database = database;
    this.db = database.db;
    this.logger = logger;
  }

  getSession(id: string): Promise<SessionRecord | undefined> {
    return this.run('getSession', () => readSession(this.db, id));
  }

  ensureSession(id: string, model: string, now: string): Promise<SessionRecord> {
    return this.run('ensureSession', () =>
      this.db.transaction().execute(async (trx) => {
        await ensureIn(trx, id, model, now);
        const record = await readSession(trx, id);
        if (record === undefined) throw new Error(`session ${id} vanished inside its transaction`);
        return record;
      }),
    );
  }

  listMessages(sessionId: string): Promise<StoredMessage[]> {
    return this.run('listMessages', async () => {
      const rows = await this.db
        .selectFrom('messages')
        .innerJoin('sessions', 'sessions.conversation_id', 'messages.conversation_id')
        .selectAll('messages')
        .where('sessions.id', '=', sessionId)
        .orderBy('messages.seq')
        .execute();
      return rows.map((row) => toStoredMessage(row, sessionId));
    });
  }

  beginTurn(input: BeginTurnInput): Promise<{ assistantMessageId: number }> {
    const { sessionId, model, messages, now } = input;
    return this.run('beginTurn', () =>
      this.db.transaction().execute(async (trx) => {
        const conversationId = await ensureIn(trx, sessionId, model, now);
        // On Postgres this row lock is held until commit: a concurrent turn of the same session
        // waits here, then reads the max(seq) this one wrote (read committed takes a new snapshot
        // per statement). SQLite runs one write transaction at a time anyway.
        await trx
          .updateTable('sessions')
          .set({ status: 'active', archived_at: null, updated_at: now, last_active_at: now })
          .where('id', '=', sessionId)
          .execute();
        const top = await trx
          .selectFrom('messages')
          .select((eb) => eb.fn.max('seq').as('seq'))
          .where('conversation_id', '=', conversationId)
          .executeTakeFirst();
        let seq = Number(top?.seq ?? 0);
        const base = { conversation_id: conversationId, model, created_at: now, updated_at: now };
        const rows: NewMessageRow[] = messages.map((m) => ({ ...base, ...inputColumns(m), seq: ++seq, status: 'complete' }));
        const placeholderSeq = ++seq;
        rows.push({ ...base, seq: placeholderSeq, role: 'assistant', content: '', status: 'incomplete' });
        let assistantMessageId: number | undefined;
        for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
          const inserted = await trx
            .insertInto('messages')
            .values(rows.slice(i, i + INSERT_CHUNK_ROWS))
            .returning(['id', 'seq'])
            .execute();
          const hit = inserted.find((r) => Number(r.seq) === placeholderSeq);
          if (hit !== undefined) assistantMessageId = Number(hit.id);
        }
        await trx
          .updateTable('conversations')
          .set((eb) => ({ message_count: eb('message_count', '+', rows.length), model, updated_at: now, archived_at: null }))
          .where('id', '=', conversationId)
          .execute();
        if (assistantMessageId === undefined) throw new Error('the assistant placeholder was inserted without an id');
        return { assistantMessageId };
      }),
    );
  }

  /**
   * Only while the message is still `incomplete` and not written after `now`, so a deferred
   * partial save that lands after `completeTurn` cannot overwrite the final text.
   */
  savePartial(assistantMessageId: number, content: string, thinking: string | undefined, now: string): Promise<void> {
    return this.run('savePartial', async () => {
      await this.db
        .updateTable('messages')
        .set({ content, thinking: thinking ?? null, updated_at: now })
        .where('id', '=', assistantMessageId)
        .where('status', '=', 'incomplete')
        .where('updated_at', '<=', now)
        .execute();
    });
  }

  /** @throws ParleyError PARLEY_ERR_INTERNAL when no assistant message has this id (a bug). */
  completeTurn(assistantMessageId: number, input: CompleteTurnInput): Promise<void> {
    const m = input.metrics;
    return this.run('completeTurn', () =>
      this.db.transaction().execute(async (trx) => {
        const row = await trx
          .updateTable('messages')
          .set({
            status: input.status,
            content: input.content,
            thinking: input.thinking ?? null,
            tool_calls: input.toolCalls === undefined ? null : JSON.stringify(input.toolCalls),
            done_reason: m?.doneReason ?? null,
            prompt_tokens: m?.promptTokens ?? null,
            completion_tokens: m?.completionTokens ?? null,
            total_duration_ns: m?.totalDurationNs ?? null,
            load_duration_ns: m?.loadDurationNs ?? null,
            prompt_eval_duration_ns: m?.promptEvalDurationNs ?? null,
            eval_duration_ns: m?.evalDurationNs ?? null,
            updated_at: input.now,
          })
          .where('id', '=', assistantMessageId)
          .where('role', '=', 'assistant')
          .returning('conversation_id')
          .executeTakeFirst();
        if (row === undefined) {
          throw new ParleyError('PARLEY_ERR_INTERNAL', `completeTurn: no assistant message with id ${assistantMessageId}`);
        }
        await trx.updateTable('conversations').set({ updated_at: input.now }).where('id', '=', row.conversation_id).execute();
        if (input.status === 'complete') await setAutoTitle(trx, row.conversation_id);
      }),
    );
  }

  archiveIdle(idleBefore: string, now: string): Promise<number> {
    return this.run('archiveIdle', () =>
      this.db.transaction().execute(async (trx) => {
        // Sessions first: on Postgres a turn that commits meanwhile makes its row fail the
        // re-checked `last_active_at < idleBefore`, so only really idle conversations follow.
        const archived = await trx
          .updateTable('sessions')
          .set({ status: 'archived', archived_at: now, updated_at: now })
          .where('status', '=', 'active')
          .where('last_active_at', '<', idleBefore)
          .returning('conversation_id')
          .execute();
        const ids = archived.map((r) => r.conversation_id);
        for (let i = 0; i < ids.length; i += IN_LIST_CHUNK) {
          await trx
            .updateTable('conversations')
            .set({ archived_at: now })
            .where('id', 'in', ids.slice(i, i + IN_LIST_CHUNK))
            .execute();
        }
        if (ids.length > 0) this.logger?.info({ sessions: ids.length, idleBefore }, 'idle sessions archived');
        return ids.length;
      }),
    );
  }

  async ping(): Promise<boolean> {
    try {
      await sql`select 1`.execute(this.db);
      return true;
    } catch (err) {
      this.logger?.warn({ err }, 'database ping failed');
      return false;
    }
  }

  close(): Promise<void> {
    return this.database.close();
  }

  private async run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const error = storageUnavailable(operation, e);
      if (error !== e) this.logger?.error({ err: e, operation }, 'database operation failed');
      throw error;
    }
  }
}

/**
 * Creates the session and its conversation if new, reactivates it if archived; returns the
 * conversation id. Two transactions creating the same new session: the second one's session
 * insert waits for the first (Postgres) and then does nothing; it drops its own conversation row
 * and reads the winner's.
 */
async function ensureIn(trx: Db, id: string, model: string, now: string): Promise<string> {
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
  const conversationId = randomUUID();
  await trx.insertInto('conversations').values({ id: conversationId, model, created_at: now, updated_at: now }).execute();
  const inserted = await trx
    .insertInto('sessions')
    .values({ id, conversation_id: conversationId, status: 'active', created_at: now, updated_at: now, last_active_at: now })
    .onConflict((oc) => oc.column('id').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (inserted !== undefined) return conversationId;
  await trx.deleteFrom('conversations').where('id', '=', conversationId).execute();
  return ensureIn(trx, id, model, now);
}

/** Titles an untitled conversation from its first user message (the first exchange completed). */
async function setAutoTitle(trx: Db, conversationId: string): Promise<void> {
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

async function readSession(db: Db, id: string): Promise<SessionRecord | undefined> {
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
