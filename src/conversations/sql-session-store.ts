import { sql, type Kysely } from 'kysely';
import type { Logger } from '../observability/logger.js';
import { writeStatements, writeTransaction, type Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import { storageOperation } from '../storage/storage-error.js';
import type { BegunTurn, BeginTurnInput, CompleteTurnInput, HistoryVersion, RecordedTurn, SessionRecord, SessionStore, StoredMessage } from './session-store.js';
import { toStoredMessage } from './sql-session-rows.js';
import { ensureIn, readSession } from './sql-session-queries.js';
import { beginTurnIn, completeTurnIn, recordTurnIn } from './sql-turn-queries.js';

type Db = Kysely<DatabaseSchema>;

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
      writeTransaction(this.database, async (trx) => {
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

  /**
   * One write transaction (BEGIN IMMEDIATE on SQLite), three statements for a known session
   * (`beginTurnIn`, sql-turn-queries.ts).
   */
  beginTurn(input: BeginTurnInput): Promise<BegunTurn> {
    return this.run('beginTurn', () => writeTransaction(this.database, (trx) => beginTurnIn(trx, input)));
  }

  /**
   * Only while the message is still `incomplete` and not written after `now`, so a deferred
   * partial save that lands after `completeTurn` cannot overwrite the final text.
   */
  savePartial(assistantMessageId: number, content: string, thinking: string | undefined, now: string): Promise<void> {
    // One statement, committed with the other writes of this moment (group commit on SQLite).
    return this.run('savePartial', () =>
      writeStatements(this.database, async (db) => {
        await sql`update messages set content = ${content}, thinking = ${thinking ?? null}, updated_at = ${now} where id = ${assistantMessageId} and status = 'incomplete' and updated_at <= ${now}`.execute(db);
      }),
    );
  }

  /** One write transaction (`completeTurnIn`, sql-turn-queries.ts). */
  completeTurn(assistantMessageId: number, input: CompleteTurnInput): Promise<void> {
    return this.run('completeTurn', () => writeTransaction(this.database, (trx) => completeTurnIn(trx, assistantMessageId, input)));
  }

  /** One write transaction (`recordTurnIn`, sql-turn-queries.ts). */
  recordTurn(input: BeginTurnInput, finalOf: (turn: BegunTurn) => CompleteTurnInput): Promise<RecordedTurn> {
    return this.run('recordTurn', () => writeTransaction(this.database, (trx) => recordTurnIn(trx, input, finalOf)));
  }

  historyVersion(sessionId: string): Promise<HistoryVersion | undefined> {
    return this.run('historyVersion', async () => {
      const r = await sql<{ id: string; message_count: number | string; updated_at: string }>`select conversations.id, conversations.message_count, conversations.updated_at from sessions inner join conversations on conversations.id = sessions.conversation_id where sessions.id = ${sessionId}`.execute(this.db);
      const row = r.rows[0];
      return row === undefined ? undefined : { conversationId: row.id, messageCount: Number(row.message_count), updatedAt: row.updated_at };
    });
  }

  archiveIdle(idleBefore: string, now: string): Promise<number> {
    return this.run('archiveIdle', () =>
      writeTransaction(this.database, async (trx) => {
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

  private run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return storageOperation(operation, fn, this.logger);
  }
}
