import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
// Types only: pg (~15 MB of RSS with its dependencies) is loaded when a postgres:// URL is opened.
import type pg from 'pg';
import { CompiledQuery, Kysely, PostgresDialect, sql } from 'kysely';
import { BusyRetrySqliteDialect, groupCommitFor, withStatementCache } from './sqlite-connection.js';
import type { Logger } from '../observability/logger.js';
import type { DatabaseSchema } from './schema.js';
import { storageUnavailable } from './storage-error.js';

export type DialectName = 'sqlite' | 'postgres';

/** An open database: the Kysely handle, which dialect it speaks, and how to close it. */
export interface Database {
  readonly db: Kysely<DatabaseSchema>;
  readonly dialect: DialectName;
  /**
   * Postgres only: the schema our tables live in (the `schema` option, else the server's
   * `current_schema()`, usually `public`). Undefined on SQLite.
   */
  readonly schema?: string | undefined;
  /**
   * SQLite only: `PRAGMA data_version` of this connection (synchronous, about a microsecond). It
   * changes when another connection, e.g. `parley keys revoke` in another process, committed to
   * the file, and never for this connection's own commits, so an in-process cache of rows is
   * valid while it is unchanged and its owner clears it on its own writes. Undefined on Postgres,
   * where other replicas write over the network and nothing tells this one.
   */
  readonly dataVersion?: (() => number) | undefined;
  /** Closes the pool / file. Idempotent; queries after it fail with PARLEY_ERR_STORAGE_UNAVAILABLE. */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  logger?: Logger | undefined;
  /**
   * Postgres only: a schema to use instead of the default one (created if missing; every pooled
   * connection gets `search_path` set to it). Letters, digits and `_`, at most 63 characters.
   * Tests use it to isolate themselves inside one database.
   */
  schema?: string | undefined;
  /** Postgres only: largest number of pooled connections. Default 10. */
  poolSize?: number | undefined;
  /** Postgres only: longest wait for a new connection, in ms. Default 5 s (pg's own default is forever). */
  connectTimeoutMs?: number | undefined;
}

/** True for `postgres://…` and `postgresql://…` URLs. */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/**
 * Opens the database named by `url`: a `postgres://` or `postgresql://` URL selects Postgres (pg
 * pool), anything else is a SQLite file path (its parent directory is created) or `:memory:`.
 * Postgres is asked a trivial query before this resolves, so a wrong URL fails here.
 * Does not migrate: call `migrateToLatest` from `migrations.ts`.
 * @throws ParleyError PARLEY_ERR_STORAGE_UNAVAILABLE when the file cannot be opened or the server
 *   cannot be reached; Error for an invalid `schema` name.
 */
export async function openDatabase(url: string, opts: OpenDatabaseOptions = {}): Promise<Database> {
  return isPostgresUrl(url) ? openPostgres(url, opts) : openSqlite(url, opts);
}

function openSqlite(path: string, opts: OpenDatabaseOptions): Database {
  let file: SQLite.Database | undefined;
  try {
    if (path !== ':memory:' && path !== '') mkdirSync(dirname(resolve(path)), { recursive: true });
    file = new SQLite(path);
    // WAL with synchronous=NORMAL: a commit is appended to the WAL file (in the OS page cache)
    // before COMMIT returns, so a committed transaction survives kill -9 of this process. Only a
    // power loss or OS crash can lose the last few commits (the WAL is fsynced at checkpoints).
    file.pragma('journal_mode = WAL');
    file.pragma('synchronous = NORMAL');
    file.pragma('foreign_keys = ON');
    // No synchronous wait for another process's lock: better-sqlite3 would wait it out on this
    // thread, freezing every stream. SQLITE_BUSY is retried on timers instead (BusyRetryDriver).
    file.pragma('busy_timeout = 0');
  } catch (e) {
    if (file?.open === true) file.close();
    throw storageUnavailable('opening the SQLite database', e);
  }
  const sqlite = file;
  // Kysely runs every query of this dialect on the one connection, one transaction at a time.
  const db = new Kysely<DatabaseSchema>({ dialect: new BusyRetrySqliteDialect({ database: withStatementCache(sqlite) }) });
  opts.logger?.debug({ path }, 'sqlite database opened');
  const close = async (): Promise<void> => {
    await db.destroy();
    // Kysely's destroy() is a no-op when no query ever ran; the file must close anyway.
    if (sqlite.open) sqlite.close();
  };
  const dataVersionStatement = sqlite.prepare('pragma data_version').pluck();
  const dataVersion = (): number => dataVersionStatement.get() as number;
  return { db, dialect: 'sqlite', schema: undefined, dataVersion, close: once(close) };
}

/**
 * Runs `fn` in one write transaction. On SQLite it starts with `BEGIN IMMEDIATE`: the write lock
 * is taken first, so a lock held by another process (a CLI, a second Parley) is waited for, up to
 * 5 s, on timers that leave the event loop free (BusyRetrySqliteDialect). A plain `BEGIN` that reads first would make the later
 * write an upgrade that SQLite refuses at once with SQLITE_BUSY (busy_timeout does not apply).
 * Write transactions asked for in the same turn of the event loop (or while a group runs) are
 * committed together (group commit, see SqliteGroupCommit): each `fn` still runs alone in its own
 * savepoint, sees the writes of those before it, and its promise settles only after the commit
 * that made it durable.
 * On Postgres it is Kysely's transaction (`begin` … `commit`, read committed).
 * Rolls back and rethrows when `fn` throws.
 */
export async function writeTransaction<T>(database: Pick<Database, 'db' | 'dialect'>, fn: (trx: Kysely<DatabaseSchema>) => Promise<T>): Promise<T> {
  if (database.dialect !== 'sqlite') return database.db.transaction().execute(fn);
  return groupCommitFor(database.db).run(fn);
}

/**
 * Runs `fn`, whose writes need no transaction of their own (one statement, or statements each
 * valid alone): on SQLite inside the group commit like `writeTransaction` (a lone UPDATE is
 * otherwise a commit of its own: WAL frames and a wal-index update per statement), on Postgres
 * directly on the pool, each statement its own autocommit (one round trip instead of three).
 */
export async function writeStatements<T>(database: Pick<Database, 'db' | 'dialect'>, fn: (db: Kysely<DatabaseSchema>) => Promise<T>): Promise<T> {
  if (database.dialect !== 'sqlite') return fn(database.db);
  return groupCommitFor(database.db).run(fn);
}


const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const INT8_OID = 20;

/** int8 (bigint, count(*)) as a JS number; exact up to 2^53 (104 days in nanoseconds). */
const pgTypesOf = (types: typeof pg.types) => ({
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
});

async function openPostgres(url: string, opts: OpenDatabaseOptions): Promise<Database> {
  const schema = opts.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(`invalid Postgres schema name ${JSON.stringify(schema)}: use letters, digits and _`);
  }
  const { default: pgModule } = await import('pg');
  const pool = new pgModule.Pool({
    connectionString: url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    types: pgTypesOf(pgModule.types),
  });
  // An idle pooled connection that dies (server restart, network) is reported here; without a
  // listener pg would crash the process. The pool drops it and opens a new one when needed.
  pool.on('error', (err) => {
    opts.logger?.warn({ err }, 'idle postgres connection failed; the pool will replace it');
  });
  // pg-pool listens for a connection's 'error' only while it is idle. One that dies while checked
  // out (a query or transaction running when the server restarts or pg_terminate_backend hits it)
  // would emit 'error' with no listener, which throws and crashes the process. The running query
  // fails with PARLEY_ERR_STORAGE_UNAVAILABLE anyway, and the pool discards the dead connection when
  // it is released; this listener only keeps the event from being fatal.
  const checkedOut = new WeakSet<pg.PoolClient>();
  pool.on('acquire', (client) => checkedOut.add(client));
  pool.on('release', (_err, client) => checkedOut.delete(client));
  pool.on('connect', (client) => {
    client.on('error', (err) => {
      if (checkedOut.has(client)) opts.logger?.warn({ err }, 'postgres connection failed during a query; the pool will replace it');
    });
  });
  const db = new Kysely<DatabaseSchema>({
    dialect: new PostgresDialect({
      pool,
      ...(schema === undefined
        ? {}
        : { onCreateConnection: async (conn) => void (await conn.executeQuery(CompiledQuery.raw(`set search_path to "${schema}"`))) }),
    }),
  });
  try {
    if (schema !== undefined) await createSchema(pool, schema);
    const row = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
    const current = row.rows[0]?.schema ?? undefined;
    if (current === undefined) throw new Error('the server reports no current schema (empty search_path?)');
    opts.logger?.debug({ schema: current }, 'postgres database opened');
    return { db, dialect: 'postgres', schema: current, close: once(() => db.destroy()) };
  } catch (e) {
    await db.destroy().catch((closeError: unknown) => opts.logger?.warn({ err: closeError }, 'closing the failed postgres pool failed'));
    throw storageUnavailable('connecting to Postgres', e);
  }
}

/** `create schema if not exists` can still fail when two pools race to create it: then it exists. */
async function createSchema(pool: pg.Pool, schema: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(`create schema if not exists "${schema}"`);
  } catch (e) {
    const found = await client.query('select 1 from pg_namespace where nspname = $1', [schema]);
    if (found.rowCount === 0) throw e;
  } finally {
    client.release();
  }
}

function once(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}
