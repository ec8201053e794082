import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, writeTransaction, type Database } from './database.js';

/**
 * Group commit (storage/sqlite-connection.ts): write transactions that arrive while one runs are
 * committed together, each in its own savepoint. What callers check: every resolved write is in
 * the file (seen by another connection), a failed one left nothing, the others are unharmed, and
 * the number of commits falls under concurrency.
 */
describe('SQLite write transactions under group commit', () => {
  let dir: string;
  let database: Database;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-group-'));
    file = join(dir, 'parley.db');
    database = await openDatabase(file);
    await sql`create table t (k text primary key, v integer not null)`.execute(database.db);
  });
  afterEach(async () => {
    await database.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** What another process would read from the file. */
  const committedRows = (): Array<{ k: string; v: number }> => {
    const other = new SQLite(file, { readonly: true });
    try {
      return other.prepare('select k, v from t order by k').all() as Array<{ k: string; v: number }>;
    } finally {
      other.close();
    }
  };
  const walFrames = (): Promise<number> => {
    const r = database.db.executeQuery(sql`pragma wal_checkpoint(passive)`.compile(database.db));
    return r.then((x) => Number((x.rows[0] as { log: number }).log));
  };

  it('commits 200 concurrent writes in far fewer commits, each durable once its promise resolves, in arrival order', async () => {
    const before = await walFrames();
    const order: number[] = [];
    const writes = Array.from({ length: 200 }, (_, i) =>
      writeTransaction(database, async (trx) => {
        // Each sees the writes of those before it: a running total, as if run one after another.
        const prev = await sql<{ v: number }>`select coalesce(max(v), 0) as v from t`.execute(trx);
        await sql`insert into t (k, v) values (${`k${String(i).padStart(3, '0')}`}, ${Number(prev.rows[0]!.v) + 1})`.execute(trx);
        order.push(i);
        return i;
      }),
    );
    expect(await Promise.all(writes)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(order).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const rows = committedRows();
    expect(rows).toHaveLength(200);
    expect(rows.map((r) => r.v)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    // One transaction each would append at least one WAL frame per commit (200+); grouped, the
    // same table and index pages are written once per group.
    const frames = (await walFrames()) - before;
    expect(frames).toBeLessThan(50);
  });

  it('lets the event loop run between groups: a long run of writes does not hold back timers and I/O', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const ticksSeen: number[] = [];
    // 30 writes of 1 ms each: as one group they would hold the event loop for 30 ms.
    const spin = (ms: number): void => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    try {
      await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          writeTransaction(database, async (trx) => {
            spin(1);
            await sql`insert into t (k, v) values (${`k${String(i).padStart(2, '0')}`}, ${i})`.execute(trx);
            ticksSeen.push(ticks);
          }),
        ),
      );
    } finally {
      clearInterval(timer);
    }
    // The 1 ms timer ran between groups, several times over the 30 ms.
    expect(ticksSeen[29]! - ticksSeen[0]!).toBeGreaterThanOrEqual(3);
    expect(committedRows().map((r) => r.v)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('rolls back only the write that threw; the rest of its group commits and its caller gets its own error', async () => {
    const results = await Promise.allSettled(
      ['a', 'b', 'c', 'd'].map((k) =>
        writeTransaction(database, async (trx) => {
          await sql`insert into t (k, v) values (${k}, 1)`.execute(trx);
          if (k === 'b') throw new Error('b changed its mind');
          if (k === 'c') await sql`insert into t (k, v) values ('a', 2)`.execute(trx); // primary key clash
          return k;
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ message: 'b changed its mind' });
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    // c's first insert went with its savepoint.
    expect(committedRows()).toEqual([
      { k: 'a', v: 1 },
      { k: 'd', v: 1 },
    ]);
    // The connection is usable and outside any transaction afterwards.
    await writeTransaction(database, async (trx) => void (await sql`insert into t (k, v) values ('e', 1)`.execute(trx)));
    expect(committedRows().map((r) => r.k)).toEqual(['a', 'd', 'e']);
  });

  it('fails the whole group with the lock error when another process holds the write lock past the wait, storing none of it', async () => {
    const holder = new SQLite(file);
    holder.exec('begin immediate');
    const started = Date.now();
    try {
      const results = await Promise.allSettled([1, 2, 3].map((v) => writeTransaction(database, async (trx) => void (await sql`insert into t (k, v) values (${`k${v}`}, ${v})`.execute(trx)))));
      expect(results.every((r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'SQLITE_BUSY')).toBe(true);
      expect(Date.now() - started).toBeGreaterThanOrEqual(4_900);
    } finally {
      holder.exec('rollback');
      holder.close();
    }
    expect(committedRows()).toEqual([]);
    await writeTransaction(database, async (trx) => void (await sql`insert into t (k, v) values ('after', 1)`.execute(trx)));
    expect(committedRows()).toEqual([{ k: 'after', v: 1 }]);
  }, 20_000);
});
