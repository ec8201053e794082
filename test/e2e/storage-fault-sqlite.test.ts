import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { simReplyText } from '../../src/sim/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ndjson, raw } from './raw-http.js';

/**
 * A session turn that cannot be written sends no reply text (issue 5, storage faults): the first
 * chunk of a reply goes to the client only once the turn's rows are stored, so a crash after it
 * can never lose a turn the client saw part of (test/chaos/parley-kill.test.ts), and a write that
 * fails is a clean 503 before any byte, not a reply that breaks off.
 *
 * The fault: another process holds SQLite's write lock on Parley's file. Parley's write
 * transactions start with BEGIN IMMEDIATE, retried on timers for up to 5 s (the event loop stays
 * free): a lock held briefly delays the turn, one held longer fails it.
 */

/** A second process: takes SQLite's write lock on the file argv[1], says so, and holds it until killed. */
const HOLD_WRITE_LOCK = `
  const db = new (require('better-sqlite3'))(process.argv[1]);
  db.exec('begin immediate');
  process.stdout.write('locked\\n');
  setInterval(() => {}, 1000);
`;

/** The same, holding the lock for 300 ms only. */
const HOLD_WRITE_LOCK_300_MS = `
  const db = new (require('better-sqlite3'))(process.argv[1]);
  db.exec('begin immediate');
  process.stdout.write('locked\\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  db.exec('commit');
  db.close();
`;
/** How long Parley waits for another process's write lock (storage/database.ts). */
const BUSY_TIMEOUT_MS = 5_000;

let h: Harness | undefined;
let holder: ChildProcess | undefined;
let dir: string | undefined;
afterEach(async () => {
  if (holder && holder.exitCode === null && holder.signalCode === null) {
    holder.kill('SIGKILL');
    await once(holder, 'exit');
  }
  holder = undefined;
  await h?.close();
  h = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const turn = (url: string, content: string, stream = true) =>
  raw(url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content }], session_id: 'locked-out', stream } });

describe('storage fault on SQLite: the write lock held by another process', () => {
  it('answers 503 PARLEY_ERR_STORAGE_UNAVAILABLE before any reply text, aborts the upstream, stores nothing of the turn, and recovers by itself', { timeout: 60_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-locked-'));
    const dbFile = join(dir, 'parley.db');
    // 40 tokens 150 ms apart: the upstream is still answering when the busy wait ends.
    // A stream:false turn is first written by its first partial save (here 100 ms in), so its
    // failed write is also known while the upstream still answers.
    h = await startHarness({ sim: { replyTokens: 40, tokenIntervalMs: 150 }, config: { databaseUrl: dbFile, sessions: { partialSaveIntervalMs: 100 } } });
    expect(ndjson((await turn(h.url, 'one')).text).at(-1)).toMatchObject({ done: true });

    holder = spawn(process.execPath, ['-e', HOLD_WRITE_LOCK, dbFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(holder.stdout!, 'data');
    for (const stream of [true, false]) {
      const started = Date.now();
      const pending = turn(h.url, `two (stream ${stream})`, stream);
      // While the turn waits for the lock, Parley keeps serving: the wait is on timers, not a
      // synchronous busy_timeout that would freeze every stream of the process (Parley runs in
      // this process, so a frozen event loop would make this 1 s timer fire seconds late).
      const timerSet = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      expect(Date.now() - timerSet).toBeLessThan(1_500);
      const pingStarted = Date.now();
      expect((await raw(h.url, '/')).status).toBe(200);
      expect(Date.now() - pingStarted).toBeLessThan(500);
      const r = await pending;
      // BEGIN IMMEDIATE waited for the lock before giving up.
      expect(Date.now() - started).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS - 100);
      expect(r.status).toBe(503);
      expect(JSON.parse(r.text)).toEqual({ error: 'database unavailable: beginTurn failed' });
      expect(h.logs.some((l) => l.code === 'PARLEY_ERR_STORAGE_UNAVAILABLE' && l.msg === 'request.failed')).toBe(true);
    }
    // The upstream started answering and was cut off when the wait gave up (its reply would take 6 s).
    const chats = () => h!.sim.requests.filter((r) => r.path === '/api/chat');
    await h.sim.waitFor(() => chats().length === 3 && chats().slice(1).every((r) => r.aborted), 2_000);
    expect(chats().slice(1).every((r) => r.abortedAt! - r.receivedAt < BUSY_TIMEOUT_MS + 800 && r.finishedAt === undefined)).toBe(true);
    expect((await raw(h.url, '/metrics')).text).toMatch(/^parley_storage_failures_total\{operation="beginTurn"\} 2$/m);

    holder.kill('SIGKILL');
    await once(holder, 'exit');
    const three = await turn(h.url, 'three');
    expect(ndjson(three.text).at(-1)).toMatchObject({ done: true });
    const stored = JSON.parse((await raw(h.url, '/api/sessions/locked-out')).text) as { messages: Array<{ role: string; content: string; status: string }> };
    expect(stored.messages.map((m) => [m.role, m.content, m.status])).toEqual([
      ['user', 'one', 'complete'],
      ['assistant', simReplyText('one', 40), 'complete'],
      ['user', 'three', 'complete'],
      ['assistant', simReplyText('three', 40), 'complete'],
    ]);
  });

  it('waits for a write lock held briefly by another process and stores the turn (BEGIN IMMEDIATE, not a failed upgrade)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-locked-'));
    const dbFile = join(dir, 'parley.db');
    h = await startHarness({ sim: { replyTokens: 3, tokenIntervalMs: 1 }, config: { databaseUrl: dbFile } });
    expect(ndjson((await turn(h.url, 'one')).text).at(-1)).toMatchObject({ done: true });
    holder = spawn(process.execPath, ['-e', HOLD_WRITE_LOCK_300_MS, dbFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(holder.stdout!, 'data');
    const started = Date.now();
    const two = await turn(h.url, 'two');
    expect(two.status).toBe(200);
    expect(ndjson(two.text).at(-1)).toMatchObject({ done: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    const stored = JSON.parse((await raw(h.url, '/api/sessions/locked-out')).text) as { messages: Array<{ content: string; status: string }> };
    expect(stored.messages.map((m) => m.status)).toEqual(['complete', 'complete', 'complete', 'complete']);
    expect(stored.messages[2]!.content).toBe('two');
  });
});
