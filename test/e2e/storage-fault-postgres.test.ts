import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pg from 'pg';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { simReplyText } from '../../src/sim/index.js';
import { openDatabase, type Database } from '../../src/storage/database.js';
import { postgresTestUrl } from '../helpers/databases.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ndjsonReader } from '../helpers/parley-process.js';

/**
 * Storage fault on Postgres (issue 5): Parley's database connections are killed mid-operation
 * with `pg_terminate_backend` from a separate connection, and Parley recovers by itself.
 *
 * "Mid-operation" is made certain, not left to timing: the separate connection first locks the
 * session's messages table (EXCLUSIVE: reads pass, writes wait), so Parley's writes are waiting on
 * the server when their connections are terminated; `pg_stat_activity` shows them waiting first.
 * Only Parley's own connections are terminated (they carry an application_name of their own),
 * never those of other test files running at the same time in the same database.
 *
 * - Writes of replies in progress (partial saves, the final completeTurn) are idempotent and
 *   retried on a fresh connection: those turns complete, stored exactly as the client saw them.
 * - A turn's first write (its insert) is not retried: the client gets 503
 *   PARLEY_ERR_STORAGE_UNAVAILABLE before any reply text, and nothing of the turn is stored.
 * - Next requests succeed without a restart; nothing stored before is changed or lost.
 */

const MODEL = 'llama3.2';
const TOKENS = 40;

interface Turn {
  session: string;
  user: string;
  status?: number;
  received: string;
  chunks: number;
  done: boolean;
  error?: string;
  ended: Promise<void>;
}

function startTurn(base: string, session: string, user: string): Turn {
  const turn = { session, user, received: '', chunks: 0, done: false } as Turn;
  turn.ended = (async () => {
    const res = await fetch(`${base}/api/chat`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: user }], session_id: session }),
    });
    turn.status = res.status;
    if (res.status !== 200) {
      turn.error = ((await res.json()) as { error: string }).error;
      return;
    }
    const reader = ndjsonReader(res);
    for (let c = await reader.next(); c; c = await reader.next()) {
      if (typeof c.error === 'string') {
        turn.error = c.error;
        continue;
      }
      turn.chunks++;
      turn.received += (c.message as { content: string }).content;
      if (c.done === true) turn.done = true;
    }
  })();
  return turn;
}

async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.runIf(postgresTestUrl !== undefined)('storage fault on Postgres: Parley\'s connections terminated mid-operation', () => {
  it('in-progress replies complete after the pool reconnects, new turns fail with the clear storage error and store nothing, and Parley recovers by itself', async () => {
    const url = postgresTestUrl!;
    const appName = `parley_fault_${randomBytes(4).toString('hex')}`;
    const schema = `parley_test_${randomBytes(6).toString('hex')}`;
    const parleyUrl = new URL(url);
    parleyUrl.searchParams.set('application_name', appName);
    const dbLog: Array<{ msg: string }> = [];
    const logger = createLogger('warn', new Writable({ write: (chunk: Buffer, _enc, done) => void (dbLog.push(JSON.parse(chunk.toString()) as { msg: string }), done()) }));
    const database: Database = await openDatabase(parleyUrl.toString(), { schema, poolSize: 10, logger });
    // Two connections of the test's own: `locker` holds the lock in a transaction; `admin` watches
    // and terminates (outside any transaction: pg_stat_activity is a snapshot per transaction).
    const admin = new pg.Client({ connectionString: url });
    const locker = new pg.Client({ connectionString: url });
    await admin.connect();
    await locker.connect();
    cleanups.push(async () => {
      await admin.query(`drop schema if exists "${schema}" cascade`);
      await admin.end();
    });
    const h: Harness = await startHarness({ database, sim: { tokenIntervalMs: 25, replyTokens: TOKENS, parallel: 8 }, config: { queue: { slotsPerUpstream: 8 }, sessions: { partialSaveIntervalMs: 20 } } });
    cleanups.push(() => h.close());
    // First of all (cleanups run in reverse): end the locker's transaction, so nothing waits on it.
    cleanups.push(() => locker.end());

    /** Locks the messages table against writes (reads pass) until `unlock()`. */
    const lockMessages = async () => {
      await locker.query('begin');
      await locker.query(`lock table "${schema}".messages in exclusive mode`);
    };
    const unlock = () => locker.query('rollback');
    /** Parley's backends, and how many of them wait for a lock right now. */
    const parleyBackends = async () =>
      (await admin.query<{ pid: number; wait_event_type: string | null; query: string }>('select pid, wait_event_type, query from pg_stat_activity where datname = current_database() and application_name = $1', [appName])).rows;
    /** Terminates every connection of Parley's pool; answers how many. */
    const terminateParley = async () =>
      (await admin.query<{ killed: boolean }>('select pg_terminate_backend(pid) as killed from pg_stat_activity where datname = current_database() and application_name = $1', [appName])).rows.filter((r) => r.killed).length;

    // Stored before the fault: one completed turn on each of three sessions.
    const sessions = ['pg-a', 'pg-b', 'pg-c'];
    const before = sessions.map((s) => startTurn(h.url, s, `${s}: first question`));
    await Promise.all(before.map((t) => t.ended));
    expect(before.every((t) => t.done && t.received === simReplyText(t.user, TOKENS))).toBe(true);

    // Fault 1: replies are streaming (their turns stored) when their writes are held and the
    // connections killed under them.
    const streaming = sessions.map((s) => startTurn(h.url, s, `${s}: second question`));
    await waitUntil('every reply streams', () => streaming.every((t) => t.chunks >= 2));
    await lockMessages();
    // Each reply's next write (a partial save every 20 ms, or its completion) waits on the server.
    const replyWritesWaiting = async () => (await parleyBackends()).filter((b) => b.wait_event_type === 'Lock' && /^update "?messages"? set "?(content|status)"?/.test(b.query)).length;
    await waitUntil('a write of every reply waits on the lock', async () => (await replyWritesWaiting()) >= streaming.length);
    const killed1 = await terminateParley();
    await unlock();
    await Promise.all(streaming.map((t) => t.ended));
    expect(killed1).toBeGreaterThanOrEqual(1);
    for (const t of streaming) {
      expect(t.error).toBeUndefined();
      expect(t.done).toBe(true);
      expect(t.received).toBe(simReplyText(t.user, TOKENS));
    }
    // Every killed connection's error reached a listener (the pool's while idle, Parley's while
    // checked out) and was logged; one nobody listened to would have been thrown (a crash).
    const connectionErrors = () => dbLog.filter((l) => /^(idle postgres connection failed|postgres connection failed during a query)/.test(l.msg)).length;
    await expect.poll(connectionErrors).toBe(killed1);
    const metrics = (await fetch(`${h.url}/metrics`).then((r) => r.text())).split('\n');
    expect(metrics.some((l) => /^parley_storage_retries_total\{operation="(savePartial|completeTurn)"\} [1-9]/.test(l))).toBe(true);

    // Fault 2: new turns whose first write is held, then killed: a clear error, nothing stored.
    // (New sessions: a turn on a stored one may first write elsewhere, e.g. token counts.)
    const fresh = ['pg-new-1', 'pg-new-2', 'pg-new-3'];
    await lockMessages();
    const refused = fresh.map((s) => startTurn(h.url, s, `${s}: first question`));
    const insertsWaiting = async () => (await parleyBackends()).filter((b) => b.wait_event_type === 'Lock' && /^(with top as [^]*?\))?\s*insert into "?messages"?/.test(b.query)).length;
    await waitUntil('the first write of every new turn waits on the lock', async () => (await insertsWaiting()) >= refused.length);
    const killed2 = await terminateParley();
    await unlock();
    await Promise.all(refused.map((t) => t.ended));
    expect(killed2).toBeGreaterThanOrEqual(refused.length);
    await expect.poll(connectionErrors).toBe(killed1 + killed2);
    for (const t of refused) {
      expect([t.status, t.error, t.chunks]).toEqual([503, 'database unavailable: beginTurn failed', 0]);
    }
    expect(h.logs.some((l) => l.msg === 'request.failed' && l.code === 'PARLEY_ERR_STORAGE_UNAVAILABLE')).toBe(true);
    for (const id of fresh) expect((await fetch(`${h.url}/api/sessions/${id}`)).status).toBe(404);

    // Recovery without a restart: health is ok and every session takes a new turn.
    const health = (await fetch(`${h.url}/api/health`).then((r) => r.json())) as { database: { ok: boolean } };
    expect(health.database.ok).toBe(true);
    const after = [...sessions, ...fresh].map((s) => startTurn(h.url, s, `${s}: after the fault`));
    await Promise.all(after.map((t) => t.ended));
    expect(after.every((t) => t.done && t.received === simReplyText(t.user, TOKENS))).toBe(true);

    // Nothing corrupted: each history is exactly its acknowledged turns, numbered 1, 2, 3, …
    const history = (id: string) => [before, streaming, after].flat().filter((t) => t.session === id);
    for (const id of [...sessions, ...fresh]) {
      const res = await fetch(`${h.url}/api/sessions/${id}`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { message_count: number; messages: Array<{ role: string; content: string; status: string }> };
      expect(body.messages.map((m) => [m.role, m.content, m.status])).toEqual(
        history(id).flatMap((t) => [
          ['user', t.user, 'complete'],
          ['assistant', t.received, 'complete'],
        ]),
      );
    }
    const rows = await sql<{ id: string; message_count: number; n: number; max_seq: number }>`
      select c.id, c.message_count, count(m.id) as n, coalesce(max(m.seq), 0) as max_seq
      from conversations c left join messages m on m.conversation_id = c.id group by c.id, c.message_count`.execute(database.db);
    expect(rows.rows).toHaveLength(sessions.length + fresh.length);
    for (const r of rows.rows) expect([r.message_count, r.max_seq]).toEqual([r.n, r.n]);
  });
});
