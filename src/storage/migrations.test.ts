import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects, postgresDialect, sqliteDialect } from '../../test/helpers/databases.js';
import type { Database } from './database.js';
import { appliedMigrations, migrateToLatest, migrationNames } from './migrations.js';

/** A second process: takes SQLite's write lock on the file argv[1], says so, holds it 400 ms. */
const HOLD_WRITE_LOCK_MS = `
  const db = new (require('better-sqlite3'))(process.argv[1]);
  db.exec('begin immediate');
  process.stdout.write('locked\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
  db.exec('commit');
  db.close();
`;

describe.each(dialects)('migrations on $name', ({ open }) => {
  let database: Database;
  beforeEach(async () => {
    database = await open();
  });
  afterEach(async () => {
    await database.close();
  });

  async function columnsOf(table: string): Promise<string[] | undefined> {
    const tables = await database.db.introspection.getTables();
    const found = tables.find((t) => t.name === table && (database.schema === undefined || t.schema === database.schema));
    return found?.columns.map((c) => c.name).sort();
  }

  it('applies every migration to an empty database and nothing on a second run', async () => {
    expect(await migrateToLatest(database)).toEqual(migrationNames());
    expect(await migrateToLatest(database)).toEqual([]);
    expect(await appliedMigrations(database)).toEqual(migrationNames());
  });

  it('creates the conversations, sessions and messages tables with snake_case columns', async () => {
    await migrateToLatest(database);
    expect(await columnsOf('conversations')).toEqual(
      ['archived_at', 'created_at', 'deleted_at', 'id', 'message_count', 'model', 'title', 'updated_at'],
    );
    expect(await columnsOf('sessions')).toEqual(
      ['archived_at', 'conversation_id', 'created_at', 'id', 'last_active_at', 'status', 'updated_at'],
    );
    expect(await columnsOf('messages')).toEqual(
      [
        'completion_tokens', 'content', 'conversation_id', 'created_at', 'done_reason', 'eval_duration_ns', 'id', 'images',
        'load_duration_ns', 'model', 'prompt_eval_duration_ns', 'prompt_tokens', 'role', 'seq', 'status', 'thinking',
        'tokens', 'tokens_exact', 'tool_call_id', 'tool_calls', 'tool_name', 'total_duration_ns', 'updated_at',
      ],
    );
  });

  it('rejects a message whose (conversation_id, seq) already exists and one for an unknown conversation', async () => {
    await migrateToLatest(database);
    const now = '2026-11-21T12:00:00.000Z';
    await database.db.insertInto('conversations').values({ id: 'c1', created_at: now, updated_at: now }).execute();
    const message = { conversation_id: 'c1', seq: 1, role: 'user', content: 'hi', status: 'complete' as const, created_at: now, updated_at: now };
    await database.db.insertInto('messages').values(message).execute();
    await expect(database.db.insertInto('messages').values(message).execute()).rejects.toThrow();
    await expect(database.db.insertInto('messages').values({ ...message, conversation_id: 'nope' }).execute()).rejects.toThrow();
  });

  it('applies each migration once when migrateToLatest runs twice at once on one handle', async () => {
    const results = await Promise.all([migrateToLatest(database), migrateToLatest(database)]);
    expect(results.flat()).toEqual(migrationNames());
    expect(await appliedMigrations(database)).toEqual(migrationNames());
  });

  it('applies a migration that sorts before ones already applied (0002 landed after 0003/0004)', async () => {
    await migrateToLatest(database);
    // A dev database from before 0002 existed: 0001, 0003 and 0004 applied, 0002 not.
    await database.db.schema.dropTable('threads').execute();
    await database.db.schema.dropTable('session_context').execute();
    await database.db.schema.alterTable('messages').dropColumn('tokens_exact').execute();
    await database.db.schema.alterTable('messages').dropColumn('tokens').execute();
    await sql`delete from kysely_migration where name = '0002_context'`.execute(database.db);
    expect(await appliedMigrations(database)).toEqual(migrationNames().filter((n) => n !== '0002_context'));
    expect(await migrateToLatest(database)).toEqual(['0002_context']);
    expect(await appliedMigrations(database)).toEqual(migrationNames());
    expect(await columnsOf('session_context')).toContain('summary');
    expect(await columnsOf('messages')).toEqual(expect.arrayContaining(['tokens', 'tokens_exact']));
    expect(await migrateToLatest(database)).toEqual([]);
  });

  it('throws an error naming the failed migration and leaves the schema unchanged', async () => {
    // A table in the way makes 0001 fail after it created `conversations`; the rollback removes that.
    await database.db.schema.createTable('sessions').addColumn('x', 'text').execute();
    await expect(migrateToLatest(database)).rejects.toThrow(/database migration 0001_sessions failed: .*sessions/);
    expect(await appliedMigrations(database)).toEqual([]);
    expect(await columnsOf('conversations')).toBeUndefined();
  });
});

// Concurrent migrations. Two SQLite handles in one process would block each other synchronously
// (better-sqlite3 busy-waits on the thread the other handle needs), so SQLite gets a cross-process
// test and Postgres a two-handle one. Each is defined only for its own dialect, so neither is ever
// reported skipped.
describe('migrations on sqlite only', () => {
  it('waits for another process holding the SQLite write lock, then migrates', async () => {
    const where = await sqliteDialect.location();
    const file = await where.open();
    const holder = spawn(process.execPath, ['-e', HOLD_WRITE_LOCK_MS, where.target], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await once(holder.stdout, 'data');
      const started = Date.now();
      expect(await migrateToLatest(file)).toEqual(migrationNames());
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    } finally {
      await file.close();
      await where.dispose();
    }
  });
});

// Defined only when PARLEY_TEST_POSTGRES_URL is set: without it, no Postgres test is reported at all.
if (postgresDialect !== undefined) {
  const pg = postgresDialect;

  describe('migrations on postgres only', () => {
    it('applies each migration once when two processes migrate the same database at once', async () => {
      const where = await pg.location();
      const handles: Database[] = [];
      try {
        handles.push(await where.open(), await where.open());
        const results = await Promise.all(handles.map((h) => migrateToLatest(h)));
        expect(results.flat()).toEqual(migrationNames());
        expect(await appliedMigrations(handles[0] as Database)).toEqual(migrationNames());
      } finally {
        for (const h of handles) await h.close();
        await where.dispose();
      }
    });
  });
}
