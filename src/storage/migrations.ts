import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Logger } from '../observability/logger.js';
import type { Database, DialectName } from './database.js';
import type { DatabaseSchema } from './schema.js';

/**
 * The schema's history, oldest first. Never edit a migration that has shipped: add the next one.
 * Names sort in application order (Kysely applies them alphabetically).
 * Types are chosen to mean the same on both dialects: text ids and ISO timestamps, integer/bigint
 * counts; only the auto-increment key differs.
 */
function migrations(dialect: DialectName): Record<string, Migration> {
  return {
    '0001_sessions': {
      // Kysely's migration API is untyped by design: the schema is what these functions create.
      async up(db: Kysely<any>): Promise<void> {
        await db.schema
          .createTable('conversations')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('title', 'text')
          .addColumn('model', 'text')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('deleted_at', 'text')
          .addColumn('archived_at', 'text')
          .addColumn('message_count', 'integer', (c) => c.notNull().defaultTo(0))
          .execute();

        await db.schema
          .createTable('sessions')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('conversation_id', 'text', (c) => c.notNull().unique().references('conversations.id').onDelete('cascade'))
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .addColumn('last_active_at', 'text', (c) => c.notNull())
          .addColumn('archived_at', 'text')
          .addCheckConstraint('sessions_status_check', sql`status in ('active', 'archived')`)
          .execute();
        // The idle sweep: `where status = 'active' and last_active_at < ?`.
        await db.schema.createIndex('sessions_status_last_active_at_idx').on('sessions').columns(['status', 'last_active_at']).execute();

        await db.schema
          .createTable('messages')
          .addColumn('id', dialect === 'sqlite' ? 'integer' : 'bigint', (c) =>
            dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey().generatedByDefaultAsIdentity(),
          )
          .addColumn('conversation_id', 'text', (c) => c.notNull().references('conversations.id').onDelete('cascade'))
          .addColumn('seq', 'integer', (c) => c.notNull())
          .addColumn('role', 'text', (c) => c.notNull())
          .addColumn('content', 'text', (c) => c.notNull())
          .addColumn('thinking', 'text')
          .addColumn('images', 'text')
          .addColumn('tool_calls', 'text')
          .addColumn('tool_name', 'text')
          .addColumn('tool_call_id', 'text')
          .addColumn('model', 'text')
          .addColumn('status', 'text', (c) => c.notNull())
          .addColumn('done_reason', 'text')
          .addColumn('prompt_tokens', 'integer')
          .addColumn('completion_tokens', 'integer')
          .addColumn('total_duration_ns', 'bigint')
          .addColumn('load_duration_ns', 'bigint')
          .addColumn('prompt_eval_duration_ns', 'bigint')
          .addColumn('eval_duration_ns', 'bigint')
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('updated_at', 'text', (c) => c.notNull())
          // Also the index for "messages of a conversation in seq order".
          .addUniqueConstraint('messages_conversation_id_seq_key', ['conversation_id', 'seq'])
          .addCheckConstraint('messages_status_check', sql`status in ('complete', 'incomplete')`)
          .execute();
      },
      async down(db: Kysely<any>): Promise<void> {
        await db.schema.dropTable('messages').execute();
        await db.schema.dropTable('sessions').execute();
        await db.schema.dropTable('conversations').execute();
      },
    },
    '0003_conversations': {
      // The conversations API lists `where deleted_at is null order by updated_at desc` (newest first).
      async up(db: Kysely<any>): Promise<void> {
        await db.schema.createIndex('conversations_deleted_at_updated_at_idx').on('conversations').columns(['deleted_at', 'updated_at']).execute();
      },
      async down(db: Kysely<any>): Promise<void> {
        await db.schema.dropIndex('conversations_deleted_at_updated_at_idx').execute();
      },
    },
    '0002_context': {
      // Token counts per message, context state per session (truncation, running summary), and
      // threads: conversations of /api/chat callers without a session id (threads.mode = thread).
      async up(db: Kysely<any>): Promise<void> {
        await db.schema.alterTable('messages').addColumn('tokens', 'integer').execute();
        await db.schema.alterTable('messages').addColumn('tokens_exact', 'integer', (c) => c.notNull().defaultTo(0)).execute();
        await db.schema
          .createTable('session_context')
          .addColumn('session_id', 'text', (c) => c.primaryKey())
          .addColumn('window_tokens', 'integer')
          .addColumn('truncations', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('truncated_messages', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('truncated_turns', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('dropped_through_seq', 'integer')
          .addColumn('summary', 'text')
          .addColumn('summary_through_seq', 'integer')
          .addColumn('summary_messages', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('summary_tokens', 'integer')
          .addColumn('summary_tokens_exact', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('summary_model', 'text')
          .addColumn('summary_created_at', 'text')
          .addColumn('summaries', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('updated_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema
          .createTable('threads')
          .addColumn('session_id', 'text', (c) => c.primaryKey())
          .addColumn('caller_key', 'text', (c) => c.notNull())
          .addColumn('root_hash', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('last_active_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('threads_caller_key_root_hash_idx').on('threads').columns(['caller_key', 'root_hash']).execute();
        await db.schema.createIndex('threads_last_active_at_idx').on('threads').column('last_active_at').execute();
      },
      async down(db: Kysely<any>): Promise<void> {
        await db.schema.dropTable('threads').execute();
        await db.schema.dropTable('session_context').execute();
        await db.schema.alterTable('messages').dropColumn('tokens_exact').execute();
        await db.schema.alterTable('messages').dropColumn('tokens').execute();
      },
    },
    '0004_users': {
      // API keys (hashed), daily usage per key and model, the admin audit log, session owners.
      async up(db: Kysely<any>): Promise<void> {
        const autoId = (c: any) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey().generatedByDefaultAsIdentity());
        await db.schema
          .createTable('api_keys')
          .addColumn('id', 'text', (c) => c.primaryKey())
          .addColumn('name', 'text', (c) => c.notNull())
          .addColumn('prefix', 'text', (c) => c.notNull())
          .addColumn('key_hash', 'text', (c) => c.notNull().unique())
          .addColumn('tier', 'text', (c) => c.notNull())
          .addColumn('is_admin', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('created_at', 'text', (c) => c.notNull())
          .addColumn('revoked_at', 'text')
          .execute();
        await db.schema
          .createTable('usage_daily')
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('model', 'text', (c) => c.notNull())
          .addColumn('day', 'text', (c) => c.notNull())
          .addColumn('requests', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('prompt_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('reply_tokens', 'bigint', (c) => c.notNull().defaultTo(0))
          .addColumn('errors', 'integer', (c) => c.notNull().defaultTo(0))
          .addColumn('duration_ms', 'bigint', (c) => c.notNull().defaultTo(0))
          .addPrimaryKeyConstraint('usage_daily_pkey', ['key_id', 'day', 'model'])
          .execute();
        await db.schema
          .createTable('admin_audit')
          .addColumn('id', dialect === 'sqlite' ? 'integer' : 'bigint', autoId)
          .addColumn('at', 'text', (c) => c.notNull())
          .addColumn('actor', 'text', (c) => c.notNull())
          .addColumn('action', 'text', (c) => c.notNull())
          .addColumn('target', 'text')
          .addColumn('status', 'integer', (c) => c.notNull())
          .addColumn('details', 'text')
          .execute();
        await db.schema
          .createTable('session_owners')
          .addColumn('session_id', 'text', (c) => c.primaryKey())
          .addColumn('key_id', 'text', (c) => c.notNull())
          .addColumn('created_at', 'text', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('session_owners_key_id_idx').on('session_owners').column('key_id').execute();
      },
      async down(db: Kysely<any>): Promise<void> {
        for (const t of ['session_owners', 'admin_audit', 'usage_daily', 'api_keys']) await db.schema.dropTable(t).execute();
      },
    },
  };
}

/** Names of every migration this build knows, in order. */
export function migrationNames(): string[] {
  return Object.keys(migrations('sqlite')).sort();
}

function migratorFor(database: Database, db: Kysely<DatabaseSchema> = database.db): Migrator {
  const provider: MigrationProvider = { getMigrations: async () => migrations(database.dialect) };
  return new Migrator({
    db,
    provider,
    // 0002_context landed after 0003/0004 (parallel work): a database that applied those first
    // must still get 0002. Kysely otherwise refuses a pending migration that sorts before an
    // applied one ("corrupted migrations"). Every migration here is independent of the others'
    // order past 0001, so applying a late one out of order is safe.
    allowUnorderedMigrations: true,
    // Kysely looks for its bookkeeping tables in every schema unless told which one: name ours,
    // or a second Parley schema in the same Postgres database would hide our missing table.
    ...(database.schema === undefined ? {} : { migrationTableSchema: database.schema }),
  });
}

/**
 * Applies every migration not yet applied, in order, all in one transaction, so a failure leaves
 * the schema as it was. Two processes may call this at once: on Postgres Kysely holds an advisory
 * lock; on SQLite we hold `begin immediate` (the write lock) for the whole run, because Kysely
 * runs SQLite migrations outside any transaction. Idempotent.
 * @returns names of the migrations applied by this call (empty when already up to date)
 * @throws Error naming the failed migration, with the driver error as `cause`.
 */
export async function migrateToLatest(database: Database, logger?: Logger): Promise<string[]> {
  const applied =
    database.dialect === 'sqlite'
      ? await database.db.connection().execute(async (conn) => {
          await sql`begin immediate`.execute(conn);
          try {
            const names = await runMigrations(migratorFor(database, conn));
            await sql`commit`.execute(conn);
            return names;
          } catch (e) {
            try {
              await sql`rollback`.execute(conn);
            } catch (rollbackError) {
              throw new AggregateError([e, rollbackError], 'database migration failed, and so did its rollback');
            }
            throw e;
          }
        })
      : await runMigrations(migratorFor(database));
  for (const name of applied) logger?.info({ migration: name, dialect: database.dialect }, 'database migration applied');
  return applied;
}

async function runMigrations(migrator: Migrator): Promise<string[]> {
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      failed === undefined ? `database migration failed: ${reason}` : `database migration ${failed} failed: ${reason}`,
      { cause: error },
    );
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of the migrations already applied to this database, in order. */
export async function appliedMigrations(database: Database): Promise<string[]> {
  const all = await migratorFor(database).getMigrations();
  return all.filter((m) => m.executedAt !== undefined).map((m) => m.name);
}
