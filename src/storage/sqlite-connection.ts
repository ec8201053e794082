import type SQLite from 'better-sqlite3';
import { CompiledQuery, SqliteDialect, type DatabaseConnection, type Driver, type Kysely, type QueryCompiler, type QueryResult, type SqliteDatabase, type TransactionSettings } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/**
 * better-sqlite3 behind a bounded LRU of prepared statements, keyed by SQL text. Kysely's SQLite
 * driver prepares every query anew; in the benchmark that was about a third of Parley's CPU per
 * session turn (bench/results/profile-parley.txt). Statements survive schema changes (SQLite
 * re-prepares them itself). Kysely never streams (iterate) on this connection, so sharing one
 * statement between queries is safe.
 */
export function withStatementCache(file: SQLite.Database, maxStatements = 256): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => file.close(),
    prepare(sqlText: string) {
      let statement = cache.get(sqlText);
      if (statement) {
        cache.delete(sqlText);
      } else {
        statement = file.prepare(sqlText);
        if (cache.size >= maxStatements) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sqlText, statement);
      return statement;
    },
  };
}

/** How long a statement waits for another process's lock before SQLITE_BUSY is thrown, in ms. */
const SQLITE_BUSY_WAIT_MS = 5_000;

/**
 * Kysely's SQLite dialect whose connection retries a statement that failed with SQLITE_BUSY
 * (another process holds the lock: a CLI, a second Parley on the same file) on timers, 5 ms
 * doubling to 100 ms, until SQLITE_BUSY_WAIT_MS has passed; then the SQLITE_BUSY error is thrown.
 * The event loop stays free meanwhile (better-sqlite3's own `busy_timeout` waits synchronously,
 * so it is 0). A statement that failed with SQLITE_BUSY did nothing, so running it again is safe;
 * this covers BEGIN IMMEDIATE, COMMIT and single statements outside transactions alike, at no cost
 * to a statement that succeeds (the previous way switched busy_timeout off and on around every
 * transaction: two more statements each time).
 */
export class BusyRetrySqliteDialect extends SqliteDialect {
  override createDriver(): Driver {
    return new BusyRetryDriver(super.createDriver());
  }
}

class BusyRetryDriver implements Driver {
  private readonly wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(private readonly driver: Driver) {}

  init(): Promise<void> {
    return this.driver.init();
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const connection = await this.driver.acquireConnection();
    let retrying = this.wrapped.get(connection);
    if (retrying === undefined) {
      retrying = {
        executeQuery: <R>(query: CompiledQuery) => executeRetryingBusy<R>(connection, query),
        streamQuery: <R>(query: CompiledQuery, chunkSize?: number) => connection.streamQuery<R>(query, chunkSize),
      };
      this.wrapped.set(connection, retrying);
    }
    return retrying;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.driver.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.driver.rollbackTransaction(connection);
  }

  savepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.savepoint!(connection, name, compileQuery);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.rollbackToSavepoint!(connection, name, compileQuery);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    return this.driver.releaseSavepoint!(connection, name, compileQuery);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    // The driver has one connection (behind its mutex); it ignores which one is handed back.
    return this.driver.releaseConnection(connection);
  }

  destroy(): Promise<void> {
    return this.driver.destroy();
  }
}

async function executeRetryingBusy<R>(connection: DatabaseConnection, query: CompiledQuery): Promise<QueryResult<R>> {
  let deadline = 0;
  for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 100)) {
    try {
      return await connection.executeQuery<R>(query);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'SQLITE_BUSY') throw e;
      deadline ||= Date.now() + SQLITE_BUSY_WAIT_MS;
      if (Date.now() + delayMs > deadline) throw e;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

const BEGIN_IMMEDIATE = CompiledQuery.raw('begin immediate');
const COMMIT = CompiledQuery.raw('commit');
const ROLLBACK = CompiledQuery.raw('rollback');
const SAVEPOINT = CompiledQuery.raw('savepoint parley_write');
const RELEASE = CompiledQuery.raw('release parley_write');
const ROLLBACK_TO = CompiledQuery.raw('rollback to parley_write');

/** Most write transactions folded into one commit. */
const MAX_GROUP = 256;
/**
 * How long a group keeps starting writes, in ms: then it commits, and the event loop handles the
 * I/O that is due (every stream's next chunk) before the next group starts. better-sqlite3 blocks
 * the loop while a group runs; unbounded, a burst of session turns ran as one synchronous chain
 * while every stream waited for its next chunk (bench/results/latest.md, chunk gap while sessions
 * are written).
 */
const GROUP_BUDGET_MS = 2;

type Db = Kysely<DatabaseSchema>;

interface PendingWrite {
  fn: (trx: Db) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for one SQLite connection. Write transactions asked for in the same turn of the
 * event loop run together, each inside its own savepoint, in one `BEGIN IMMEDIATE` … `COMMIT`;
 * the group starts in the check phase of that turn (`setImmediate`), so a lone write waits for
 * nothing but the I/O callbacks already due. A group starts no write after GROUP_BUDGET_MS (2 ms):
 * it commits, and what is left (and what arrived meanwhile) is the next group, one turn of the
 * event loop later, so streams get their chunks in between. Every caller's promise settles after
 * that commit, so what a caller was told is stored is durable, exactly as with one transaction
 * each; but the commit's WAL write, and the pages that several turns touch (the last page of
 * `messages` and of its index, the conversations index), are paid once per group instead of once
 * per turn.
 *
 * Isolation is the same as running the transactions one after another in arrival order: one
 * connection, one `fn` at a time. A `fn` that throws has its savepoint rolled back and its caller
 * gets the error; the others commit. When the group itself fails (BEGIN IMMEDIATE times out on
 * another process's lock, COMMIT fails, or SQLite rolled the whole transaction back after an I/O
 * error) every caller of the group gets that error and nothing of the group is stored.
 */
export class SqliteGroupCommit {
  private pending: PendingWrite[] = [];
  private running = false;

  constructor(private readonly db: Db) {}

  /** Runs `fn` in a write transaction (see the class); resolves with its result once committed. */
  run<T>(fn: (trx: Db) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      // better-sqlite3 is synchronous: a transaction runs from BEGIN to COMMIT in one chain of
      // microtasks, so no other request's code can run (and queue a write) in the middle of it.
      // Writes are gathered until the event loop has handled the I/O that is ready now (every
      // client whose request arrived in this turn), then committed together.
      if (!this.running) {
        this.running = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Commits one group; the next one starts in a later turn of the event loop. */
  private async drain(): Promise<void> {
    const group = this.pending.splice(0, MAX_GROUP);
    try {
      await this.db.connection().execute((conn) => this.commitGroup(conn, group));
    } catch (e) {
      // The connection could not be had (database closed): nobody of the group was answered.
      for (const w of group) w.reject(e);
    } finally {
      if (this.pending.length > 0) setImmediate(() => void this.drain());
      else this.running = false;
    }
  }

  /**
   * Runs the group in one transaction; a write alone needs no savepoint (its failure rolls back
   * the whole). Writes not started within GROUP_BUDGET_MS go back to the head of the queue, in
   * their order, for the next group (`group` is cut to those that ran).
   */
  private async commitGroup(conn: Db, group: PendingWrite[]): Promise<void> {
    const alone = group.length === 1;
    try {
      await conn.executeQuery(BEGIN_IMMEDIATE);
    } catch (e) {
      for (const w of group) w.reject(e);
      return;
    }
    const startedAt = performance.now();
    const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    try {
      for (let i = 0; i < group.length; i++) {
        if (i > 0 && performance.now() - startedAt >= GROUP_BUDGET_MS) {
          this.pending.unshift(...group.splice(i));
          break;
        }
        const w = group[i]!;
        if (!alone) await conn.executeQuery(SAVEPOINT);
        try {
          outcomes.push({ ok: true, value: await w.fn(conn) });
        } catch (error) {
          if (alone) throw error;
          // Undo this one's writes only (a failure of the rollback itself fails the group).
          await conn.executeQuery(ROLLBACK_TO);
          outcomes.push({ ok: false, error });
        }
        if (!alone) await conn.executeQuery(RELEASE);
      }
      await conn.executeQuery(COMMIT);
    } catch (e) {
      await rollback(conn);
      for (const w of group) w.reject(e);
      return;
    }
    group.forEach((w, i) => {
      const o = outcomes[i]!;
      if (o.ok) w.resolve(o.value);
      else w.reject(o.error);
    });
  }
}

/** Rolls back whatever is open. SQLite may have rolled back by itself after SQLITE_FULL / SQLITE_IOERR: then there is nothing to undo. */
async function rollback(conn: Db): Promise<void> {
  try {
    await conn.executeQuery(ROLLBACK);
  } catch (e) {
    if (!/no transaction is active/i.test((e as Error).message)) throw e;
  }
}

const groups = new WeakMap<Db, SqliteGroupCommit>();

/** The group commit of one SQLite Kysely handle (made on first use). */
export function groupCommitFor(db: Db): SqliteGroupCommit {
  let g = groups.get(db);
  if (g === undefined) {
    g = new SqliteGroupCommit(db);
    groups.set(db, g);
  }
  return g;
}
