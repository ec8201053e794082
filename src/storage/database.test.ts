import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects, postgresDialect, postgresTestUrl } from '../../test/helpers/databases.js';
import { createLogger } from '../observability/logger.js';
import { isPostgresUrl, openDatabase, type Database } from './database.js';

const unavailable = { code: 'PARLEY_ERR_STORAGE_UNAVAILABLE' };

describe('openDatabase', () => {
  it('selects Postgres only for postgres:// and postgresql:// URLs', () => {
    expect(isPostgresUrl('postgres://u@h/db')).toBe(true);
    expect(isPostgresUrl('postgresql://u@h/db')).toBe(true);
    expect(isPostgresUrl('./data/postgres.db')).toBe(false);
    expect(isPostgresUrl(':memory:')).toBe(false);
  });

  it('opens an in-memory SQLite database for :memory:', async () => {
    const database = await openDatabase(':memory:');
    try {
      expect(database.dialect).toBe('sqlite');
      expect((await sql<{ one: number }>`select 1 as one`.execute(database.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      await database.close();
      await database.close(); // idempotent
    }
  });
});

describe('openDatabase with a SQLite file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-db-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the parent directory and sets WAL, synchronous=NORMAL, foreign keys and no synchronous busy wait (SQLITE_BUSY is retried on timers)', async () => {
    const database = await openDatabase(join(dir, 'nested', 'data', 'parley.db'));
    try {
      const pragma = async (name: string): Promise<unknown> =>
        Object.values((await sql.raw(`pragma ${name}`).execute(database.db)).rows[0] as object)[0];
      expect(await pragma('journal_mode')).toBe('wal');
      expect(await pragma('synchronous')).toBe(1); // NORMAL
      expect(await pragma('foreign_keys')).toBe(1);
      expect(await pragma('busy_timeout')).toBe(0);
    } finally {
      await database.close();
    }
  });

  it('rejects with PARLEY_ERR_STORAGE_UNAVAILABLE when the path cannot be created', async () => {
    const notADirectory = join(dir, 'file');
    await writeFile(notADirectory, 'x');
    await expect(openDatabase(join(notADirectory, 'parley.db'))).rejects.toMatchObject(unavailable);
  });

  it('keeps a committed transaction when the writing process is killed with SIGKILL', async () => {
    const file = join(dir, 'parley.db');
    const database = await openDatabase(file); // makes the file, in WAL mode (a property of the file)
    await sql`create table t (v text)`.execute(database.db);
    await database.close();
    // A second process with the connection settings openDatabase uses commits, then dies at once.
    const writer = spawn(process.execPath, ['-e', `
      const db = new (require('better-sqlite3'))(process.argv[1]);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.transaction(() => db.prepare("insert into t values ('survived')").run())();
      process.kill(process.pid, 'SIGKILL');
    `, file], { stdio: 'inherit' });
    const [, signal] = (await once(writer, 'exit')) as [number | null, string | null];
    expect(signal).toBe('SIGKILL');
    const reopened = await openDatabase(file);
    try {
      expect((await sql<{ v: string }>`select v from t`.execute(reopened.db)).rows).toEqual([{ v: 'survived' }]);
    } finally {
      await reopened.close();
    }
  });
});

describe.each(dialects)('a $name Database', ({ open }) => {
  let database: Database;
  beforeEach(async () => {
    database = await open();
  });
  afterEach(async () => {
    await database.close();
  });

  it('returns 64-bit integers and counts as JS numbers', async () => {
    const { rows } = await sql<{ big: number; n: number }>`select cast(9007199254740991 as bigint) as big, count(*) as n from (select 1 as x) as one`.execute(database.db);
    expect(rows).toEqual([{ big: 9_007_199_254_740_991, n: 1 }]);
  });

  it('fails queries after close', async () => {
    await database.close();
    await expect(sql`select 1`.execute(database.db)).rejects.toThrow();
  });
});

// Defined only when PARLEY_TEST_POSTGRES_URL is set: without it, no Postgres test is reported at all.
if (postgresTestUrl !== undefined && postgresDialect !== undefined) {
  const url = postgresTestUrl;
  const pg = postgresDialect;

  describe('openDatabase with Postgres', () => {
    it('rejects with PARLEY_ERR_STORAGE_UNAVAILABLE when the server cannot be reached', async () => {
      const refused = new URL(url);
      refused.port = '1';
      await expect(openDatabase(refused.toString())).rejects.toMatchObject(unavailable);
    });

    it('rejects a schema name that is not a plain identifier', async () => {
      await expect(openDatabase(url, { schema: 'x"; drop table y; --' })).rejects.toThrow(/invalid Postgres schema name/);
    });

    it('keeps two schemas apart: each handle sees only its own tables', async () => {
      const handles: Database[] = [];
      try {
        handles.push(await pg.open(), await pg.open());
        const [one, two] = handles as [Database, Database];
        expect(one.schema).not.toBe(two.schema);
        await sql`create table only_here (v text)`.execute(one.db);
        await expect(sql`select * from only_here`.execute(two.db)).rejects.toThrow(/only_here/);
        const { rows } = await sql<{ s: string }>`select current_schema() as s`.execute(one.db);
        expect(rows).toEqual([{ s: one.schema }]);
      } finally {
        for (const h of handles) await h.close();
      }
    });

    it('survives the server dropping an idle pooled connection, logging a warning instead of crashing', async () => {
      const lines: string[] = [];
      const logger = createLogger('warn', new Writable({ write: (chunk: Buffer, _enc, done) => void (lines.push(chunk.toString()), done()) }));
      const database = await openDatabase(url, { logger, poolSize: 1 });
      const admin = await openDatabase(url, { poolSize: 1 });
      try {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(database.db);
        await sql`select pg_terminate_backend(${rows[0]?.pid})`.execute(admin.db);
        await expect.poll(() => lines.join(''), { timeout: 5_000 }).toMatch(/idle postgres connection failed/);
        expect((await sql<{ one: number }>`select 1 as one`.execute(database.db)).rows).toEqual([{ one: 1 }]);
      } finally {
        await database.close();
        await admin.close();
      }
    });
  });
}
