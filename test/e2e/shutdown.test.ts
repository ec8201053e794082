import Sqlite from 'better-sqlite3';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { simReplyText, startSimulator, type Simulator } from '../../src/sim/index.js';
import { ndjsonReader, postChat, requestOnNewConnection, runCli, startParley, storedMessages, type ParleyProcess } from '../helpers/parley-process.js';

/**
 * Graceful shutdown and the command line, with Parley as a real child process: SIGTERM, exit
 * codes, stderr and help texts are only observable from outside the process.
 */

const MODEL = 'llama3.2';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'parley-shutdown-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('shutdown on SIGTERM', () => {
  let sim: Simulator;
  const procs: ParleyProcess[] = [];

  beforeEach(async () => {
    sim = await startSimulator({});
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill();
    await sim.close();
  });

  async function parley(env: Record<string, string> = {}): Promise<ParleyProcess> {
    const p = await startParley({ upstreams: [sim.url], databaseUrl: join(dir, 'parley.db'), env });
    procs.push(p);
    return p;
  }

  test('a reply streaming when SIGTERM arrives finishes, new requests are refused, and the process exits 0', async () => {
    sim.setOptions({ tokenIntervalMs: 30, replyTokens: 20 });
    const p = await parley();
    const u1 = { role: 'user', content: 'Explain tides in twenty words.' };
    const reader = ndjsonReader(await postChat(p, { model: MODEL, messages: [u1], session_id: 'draining' }));
    const firstChunk = await reader.next();
    expect(firstChunk?.done).toBe(false);

    p.signal('SIGTERM');
    await p.waitForLog('parley.stopping');
    const late = await requestOnNewConnection(p.url, 'POST', '/api/chat', { model: MODEL, messages: [{ role: 'user', content: 'Am I too late?' }] });
    // Refused: no longer listening (ECONNREFUSED); a connection the kernel accepted in the instant
    // before is closed unanswered (ECONNRESET), or answered 503 if its request was already read.
    expect('error' in late ? late.error : late.status).toBeOneOf(['ECONNREFUSED', 'ECONNRESET', 503]);

    let text = (firstChunk!.message as { content: string }).content;
    let last: Record<string, unknown> | undefined;
    for (let c = await reader.next(); c; c = await reader.next()) {
      text += (c.message as { content: string }).content;
      last = c;
    }
    expect(last).toMatchObject({ done: true, done_reason: 'stop', eval_count: 20, session_id: 'draining' });
    expect(text).toBe(simReplyText(u1.content, 20));

    expect(await p.exitWithin(5_000)).toEqual({ code: 0, signal: null });
    expect(p.logs.map((l) => l.msg)).toContain('parley.stopped');
    expect(p.logs.map((l) => l.msg)).not.toContain('parley.drain_timeout');
    expect(sim.requests.filter((r) => r.path === '/api/chat')).toHaveLength(1);

    const after = await parley();
    expect(await storedMessages(after, 'draining')).toMatchObject([
      { role: 'user', content: u1.content, status: 'complete' },
      { role: 'assistant', content: text, status: 'complete' },
    ]);
  });

  test('a reply longer than PARLEY_DRAIN_TIMEOUT_MS is cut, stored incomplete with its text, and the process still exits 0', async () => {
    sim.setOptions({ tokenIntervalMs: 50, replyTokens: 200 }); // a 10 s reply
    const p = await parley({ PARLEY_DRAIN_TIMEOUT_MS: '300', PARLEY_SESSION_PARTIAL_SAVE_INTERVAL_MS: '100' });
    const u1 = { role: 'user', content: 'Recite the whole of the Odyssey.' };
    const reader = ndjsonReader(await postChat(p, { model: MODEL, messages: [u1], session_id: 'too-long' }));
    let received = '';
    for (let n = 0; n < 3; n++) received += ((await reader.next())!.message as { content: string }).content;

    const signalledAt = Date.now();
    p.signal('SIGTERM');
    let sawDone = false;
    try {
      for (let c = await reader.next(); c; c = await reader.next()) {
        if (c.done === true) sawDone = true;
        if (c.message) received += (c.message as { content: string }).content;
      }
    } catch {
      // The connection is cut: that is the point.
    }
    expect(sawDone).toBe(false);

    // drain timeout 300 ms, then the cut replies are stored and the database closed
    expect(await p.exitWithin(5_000)).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeLessThan(5_000);
    expect(p.logs.map((l) => l.msg)).toContain('parley.drain_timeout');
    await expect.poll(() => sim.requests.find((r) => r.path === '/api/chat')?.aborted).toBe(true);

    const after = await parley();
    const messages = await storedMessages(after, 'too-long');
    expect(messages.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'incomplete'],
    ]);
    const saved = messages[1]!.content;
    // Parley stores every token it took from the model; the client may have missed the last
    // ones when its connection was cut.
    expect(saved.startsWith(received)).toBe(true);
    expect(received.length).toBeGreaterThan(0);
    expect(simReplyText(u1.content, 200).startsWith(saved)).toBe(true);
    expect(saved.length).toBeLessThan(simReplyText(u1.content, 200).length);
  });
});

describe('the command line', () => {
  test('a bad setting stops the process with exit code 2 and one stderr line naming the setting', async () => {
    const db = join(dir, 'never.db');
    const fromEnv = await runCli(['serve'], { PARLEY_PORT: 'abc', PARLEY_DATABASE_URL: db });
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stdout).toBe('');
    expect(fromEnv.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(fromEnv.stderr).toMatch(/PARLEY_PORT/);
    expect(fromEnv.stderr).toMatch(/abc/);

    const fromFlag = await runCli(['serve', '--upstream', 'ftp://gpu1:11434', '--database', db]);
    expect(fromFlag.code).toBe(2);
    expect(fromFlag.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(fromFlag.stderr).toMatch(/upstreams/);
    expect(fromFlag.stderr).toMatch(/--upstream/);
  });

  test('serve --help, sim --help and migrate --help print their usage and exit 0', async () => {
    const cases: Array<[string, RegExp[]]> = [
      ['serve', [/--port <port>/, /--database <url>/, /--upstream <url\.\.\.>/]],
      ['sim', [/--token-interval-ms <ms>/, /--models <names>/]],
      ['migrate', [/--database <url>/]],
    ];
    const results = await Promise.all(cases.map(([cmd]) => runCli([cmd, '--help'])));
    cases.forEach(([cmd, patterns], i) => {
      const r = results[i]!;
      expect(r.code, cmd).toBe(0);
      expect(r.stdout).toContain(`Usage: parley ${cmd} [options]`);
      for (const p of patterns) expect(r.stdout).toMatch(p);
    });
  });

  test('migrate on a fresh SQLite path creates the tables, and a second run finds nothing to do', async () => {
    const file = join(dir, 'fresh', 'sub', 'parley.db');
    const first = await runCli(['migrate'], { PARLEY_DATABASE_URL: file });
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied: /);

    const db = new Sqlite(file, { readonly: true });
    try {
      const tables = db
        .prepare("select name from sqlite_master where type = 'table' and name not like 'sqlite_%' order by name")
        .all()
        .map((r) => (r as { name: string }).name);
      expect(tables).toEqual(expect.arrayContaining(['conversations', 'messages', 'sessions']));
    } finally {
      db.close();
    }

    const second = await runCli(['migrate', '--database', file]);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe('database is up to date\n');
  });
});
