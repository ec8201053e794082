import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase, type Database, type DialectName } from '../../src/storage/database.js';

/**
 * The databases storage tests run on: `describe.each(dialects)('… on $name', ({ open }) => …)`;
 * a test for one dialect only goes in a describe of its own (`sqliteDialect`, `postgresDialect`),
 * never inside `describe.each` behind `it.runIf` (that reports it skipped on the other dialect).
 *
 * SQLite is always there (a file in a fresh directory under os.tmpdir()). Postgres is there when
 * `PARLEY_TEST_POSTGRES_URL` is set (CI: postgres://postgres@127.0.0.1:5432/test); each database
 * is then a fresh random schema in it. If the variable is set and the server cannot be reached,
 * `open()` rejects, so the tests FAIL rather than skip.
 */
export interface TestDialect {
  readonly name: DialectName;
  /** A fresh, empty, unmigrated database; its `close()` (idempotent) also deletes it. */
  open(): Promise<Database>;
  /**
   * A fresh location that can be opened, closed and opened again (to prove data outlives a
   * handle). `target` is the SQLite file path or the Postgres schema name. `open()` handles
   * close normally; `dispose()` deletes the location.
   */
  location(): Promise<{ target: string; open(): Promise<Database>; dispose(): Promise<void> }>;
}

/** The Postgres URL for tests, or undefined when Postgres tests are off. */
export const postgresTestUrl: string | undefined = process.env['PARLEY_TEST_POSTGRES_URL'] || undefined;

type Location = Awaited<ReturnType<TestDialect['location']>>;

/** A dialect from its `location()`; `open()` is a location deleted on close. */
function dialect(name: DialectName, location: () => Promise<Location>): TestDialect {
  return {
    name,
    location,
    async open() {
      const where = await location();
      const database = await where.open();
      return withClose(database, async () => {
        await database.close();
        await where.dispose();
      });
    },
  };
}

const sqlite = dialect('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'parley-test-'));
  const file = join(dir, 'data', 'parley.db');
  return { target: file, open: () => openDatabase(file), dispose: () => rm(dir, { recursive: true, force: true }) };
});

function postgres(url: string): TestDialect {
  return dialect('postgres', async () => {
    const schema = `parley_test_${randomBytes(6).toString('hex')}`;
    return {
      target: schema,
      open: () => openDatabase(url, { schema, poolSize: 4 }),
      dispose: async () => {
        const admin = await openDatabase(url, { poolSize: 1 });
        try {
          await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
        } finally {
          await admin.close();
        }
      },
    };
  });
}

/** The same database with `close` replaced by an idempotent `cleanup`. */
function withClose(database: Database, cleanup: () => Promise<void>): Database {
  let closing: Promise<void> | undefined;
  return { db: database.db, dialect: database.dialect, schema: database.schema, close: () => (closing ??= cleanup()) };
}

/** SQLite, always there: for tests that only make sense on SQLite (define them outside `describe.each(dialects)`). */
export const sqliteDialect: TestDialect = sqlite;

/**
 * Postgres when `PARLEY_TEST_POSTGRES_URL` is set, else undefined. Postgres-only tests are defined
 * only when it is there (`if (postgresDialect) describe(…)`), so a run without Postgres reports no
 * Postgres test at all and a run with it reports none skipped.
 */
export const postgresDialect: TestDialect | undefined = postgresTestUrl === undefined ? undefined : postgres(postgresTestUrl);

export const dialects: TestDialect[] = postgresDialect === undefined ? [sqliteDialect] : [sqliteDialect, postgresDialect];
