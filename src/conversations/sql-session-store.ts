import { sql, type Kysely } from 'kysely';
import { ParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import { writeTransaction, type Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import { storageOperation } from '../storage/storage-error.js';
import type { BegunTurn, BeginTurnInput, CompleteTurnInput, HistoryVersion, MessageStatus, SessionRecord, SessionStore, StoredMessage } from './session-store.js';
import { inputColumns, toStoredMessage } from './sql-session-rows.js';
import { activateOrCreate, ensureIn, readSession, setAutoTitle, setTokens } from './sql-session-queries.js';

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
   * One write transaction (BEGIN IMMEDIATE on SQLite), three statements for a known session:
   * the session row update (which also takes the row lock that serialises turns of one session
   * on Postgres, and says whether the session exists), one multi-row insert whose `seq` values
   * come from `max(seq)` read inside the same statement, and the conversation's counters.
   * Raw SQL: the fluent builder cost more CPU than SQLite's execution (bench/results).
   */
  beginTurn(input: BeginTurnInput): Promise<BegunTurn> {
    const { sessionId, model, messages, now } = input;
    return this.run('beginTurn', () =>
      writeTransaction(this.database, async (trx) => {
        const conversationId = await activateOrCreate(trx, sessionId, model, now);
        const rows = messages.map((m) => ({ ...inputColumns(m), status: 'complete' as MessageStatus }));
        rows.push({ role: 'assistant', content: '', thinking: null, images: null, tool_calls: null, tool_name: null, tool_call_id: null, status: 'incomplete' });
        const ids: number[] = [];
        let assistantSeq = 0;
        for (let i = 0; i < rows.length; i += INSERT_CHUNK_ROWS) {
          const chunk = rows.slice(i, i + INSERT_CHUNK_ROWS);
          const selects = chunk.map(
            (r, k) =>
              sql`select ${conversationId}, ${model}, ${now}, ${now}, ${r.role}, ${r.content}, ${r.thinking}, ${r.images}, ${r.tool_calls}, ${r.tool_name}, ${r.tool_call_id}, top.s + ${k + 1}, ${r.status} from top`,
          );
          const inserted = await sql<{ id: number | string; seq: number | string }>`with top as (select coalesce(max(seq), 0) as s from messages where conversation_id = ${conversationId})
insert into messages (conversation_id, model, created_at, updated_at, role, content, thinking, images, tool_calls, tool_name, tool_call_id, seq, status)
${sql.join(selects, sql` union all `)} returning id, seq`.execute(trx);
          // RETURNING order is not promised: order by seq.
          const sorted = inserted.rows.sort((a, b) => Number(a.seq) - Number(b.seq));
          ids.push(...sorted.map((r) => Number(r.id)));
          assistantSeq = Number(sorted.at(-1)?.seq ?? 0);
        }
        const counted = await sql<{ message_count: number | string }>`update conversations set message_count = message_count + ${rows.length}, model = ${model}, updated_at = ${now}, archived_at = null where id = ${conversationId} returning message_count`.execute(trx);
        const assistantMessageId = ids.pop();
        if (assistantMessageId === undefined || ids.length !== messages.length) throw new Error('the turn\'s messages were inserted without their ids');
        return { sessionId, model, messages, assistantMessageId, assistantSeq, messageIds: ids, conversationId, messageCount: Number(counted.rows[0]?.message_count ?? 0) };
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

  /**
   * One write transaction: the reply row (with its own token count), the other messages' token
   * counts in one statement, the conversation's `updated_at` and automatic title in one more.
   * @throws ParleyError PARLEY_ERR_INTERNAL when no assistant message has this id (a bug).
   */
  completeTurn(assistantMessageId: number, input: CompleteTurnInput): Promise<void> {
    const m = input.metrics;
    const own = input.tokens?.find((t) => t.id === assistantMessageId);
    const others = (input.tokens ?? []).filter((t) => t.id !== assistantMessageId);
    const toolCalls = input.toolCalls === undefined ? null : JSON.stringify(input.toolCalls);
    return this.run('completeTurn', () =>
      writeTransaction(this.database, async (trx) => {
        const tokens = own === undefined ? sql`` : sql`, tokens = ${own.tokens}, tokens_exact = ${own.exact ? 1 : 0}`;
        const row = await sql<{ conversation_id: string }>`update messages set status = ${input.status}, content = ${input.content}, thinking = ${input.thinking ?? null}, tool_calls = ${toolCalls}, done_reason = ${m?.doneReason ?? null}, prompt_tokens = ${m?.promptTokens ?? null}, completion_tokens = ${m?.completionTokens ?? null}, total_duration_ns = ${m?.totalDurationNs ?? null}, load_duration_ns = ${m?.loadDurationNs ?? null}, prompt_eval_duration_ns = ${m?.promptEvalDurationNs ?? null}, eval_duration_ns = ${m?.evalDurationNs ?? null}, updated_at = ${input.now}${tokens} where id = ${assistantMessageId} and role = 'assistant' returning conversation_id`.execute(trx);
        const conversationId = row.rows[0]?.conversation_id;
        if (conversationId === undefined) {
          throw new ParleyError('PARLEY_ERR_INTERNAL', `completeTurn: no assistant message with id ${assistantMessageId}`);
        }
        if (others.length > 0) await setTokens(trx, conversationId, others);
        const complete = input.status === 'complete';
        if (complete && input.titleIfUntitled !== undefined) {
          await sql`update conversations set updated_at = ${input.now}, title = coalesce(title, ${input.titleIfUntitled}) where id = ${conversationId}`.execute(trx);
          return;
        }
        const conv = await sql<{ title: string | null }>`update conversations set updated_at = ${input.now} where id = ${conversationId} returning title`.execute(trx);
        if (complete && conv.rows[0] !== undefined && conv.rows[0].title === null) await setAutoTitle(trx, conversationId);
      }),
    );
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
