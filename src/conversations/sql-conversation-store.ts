import { sql, type Kysely } from 'kysely';
import type { Logger } from '../observability/logger.js';
import type { Database } from '../storage/database.js';
import type { DatabaseSchema } from '../storage/schema.js';
import { storageOperation } from '../storage/storage-error.js';
import type { ConversationRecord, ConversationStore, ConversationTotals, ListConversationsQuery, ListMessagesQuery } from './conversation-store.js';
import type { StoredMessage } from './session-store.js';
import { toStoredMessage } from './sql-session-rows.js';

type Db = Kysely<DatabaseSchema>;

/**
 * `ConversationStore` over the same tables as `SqlSessionStore` (SQLite or Postgres), so a
 * session started on `/api/chat` is a conversation here and the other way round. Database
 * failures are thrown as PARLEY_ERR_STORAGE_UNAVAILABLE (driver error as `cause`, logged).
 * It does not own the database handle (`SqlSessionStore` closes it).
 */
export class SqlConversationStore implements ConversationStore {
  private readonly db: Db;

  constructor(
    database: Database,
    private readonly logger?: Logger,
  ) {
    this.db = database.db;
  }

  getConversation(id: string): Promise<{ conversation: ConversationRecord; totals: ConversationTotals } | undefined> {
    return this.run('getConversation', async () => {
      const row = await this.base().where('sessions.id', '=', id).executeTakeFirst();
      if (row === undefined) return undefined;
      const sums = await this.db
        .selectFrom('messages')
        .select((eb) => [eb.fn.sum<number | string | null>('prompt_tokens').as('prompt'), eb.fn.sum<number | string | null>('completion_tokens').as('completion')])
        .where('conversation_id', '=', row.conversation_id)
        .executeTakeFirst();
      return {
        conversation: toRecord(row),
        totals: { promptTokens: Number(sums?.prompt ?? 0), completionTokens: Number(sums?.completion ?? 0) },
      };
    });
  }

  listConversations(query: ListConversationsQuery): Promise<ConversationRecord[]> {
    return this.run('listConversations', async () => {
      let q = this.base().where('conversations.deleted_at', 'is', null);
      const owner = query.ownerKeyId;
      if (owner !== undefined) q = q.where('sessions.id', 'in', this.db.selectFrom('session_owners').select('session_id').where('key_id', '=', owner));
      const text = query.titleContains?.trim();
      if (text) q = q.where(sql<boolean>`lower(conversations.title) like ${'%' + escapeLike(text.toLowerCase()) + '%'} escape '\\'`);
      const after = query.after;
      if (after) {
        q = q.where((eb) =>
          eb.or([
            eb('conversations.updated_at', '<', after.updatedAt),
            eb.and([eb('conversations.updated_at', '=', after.updatedAt), eb('sessions.id', '<', after.id)]),
          ]),
        );
      }
      const rows = await q.orderBy('conversations.updated_at', 'desc').orderBy('sessions.id', 'desc').limit(query.limit).execute();
      return rows.map(toRecord);
    });
  }

  listMessages(id: string, query: ListMessagesQuery): Promise<StoredMessage[]> {
    return this.run('listMessages', async () => {
      let q = this.db
        .selectFrom('messages')
        .innerJoin('sessions', 'sessions.conversation_id', 'messages.conversation_id')
        .selectAll('messages')
        .where('sessions.id', '=', id);
      if (query.fromSeq !== undefined) q = q.where('messages.seq', query.order === 'asc' ? '>' : '<', query.fromSeq);
      const rows = await q.orderBy('messages.seq', query.order).limit(query.limit).execute();
      return rows.map((row) => toStoredMessage(row, id));
    });
  }

  setTitle(id: string, title: string | null, now: string): Promise<void> {
    return this.run('setTitle', async () => {
      await this.db.updateTable('conversations').set({ title, updated_at: now }).where('id', '=', this.conversationIdOf(id)).execute();
    });
  }

  setDeleted(id: string, deletedAt: string | null, now: string): Promise<void> {
    return this.run('setDeleted', async () => {
      await this.db.updateTable('conversations').set({ deleted_at: deletedAt, updated_at: now }).where('id', '=', this.conversationIdOf(id)).execute();
    });
  }

  /** Subquery: the conversation row of session `id`. */
  private conversationIdOf(id: string) {
    return this.db.selectFrom('sessions').select('conversation_id').where('id', '=', id);
  }

  private base() {
    return this.db
      .selectFrom('sessions')
      .innerJoin('conversations', 'conversations.id', 'sessions.conversation_id')
      .select([
        'sessions.id',
        'sessions.conversation_id',
        'sessions.status',
        'conversations.title',
        'conversations.model',
        'conversations.created_at',
        'conversations.updated_at',
        'conversations.archived_at',
        'conversations.deleted_at',
        'conversations.message_count',
      ]);
  }

  private run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return storageOperation(operation, fn, this.logger);
  }
}

interface BaseRow {
  id: string;
  status: 'active' | 'archived';
  title: string | null;
  model: string | null;
  created_at: string;
  updated_at: string;
  archived_at: string | null;
  deleted_at: string | null;
  message_count: number;
}

function toRecord(row: BaseRow): ConversationRecord {
  return {
    id: row.id,
    title: row.title,
    model: row.model,
    status: row.status,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    archivedAt: row.archived_at,
    deletedAt: row.deleted_at,
    messageCount: Number(row.message_count),
  };
}

/** `%`, `_` and the escape character itself match literally (`escape '\'`). */
function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => '\\' + c);
}
