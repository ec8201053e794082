import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { startHarness, type Harness } from '../helpers/harness.js';
import { ndjson, raw } from '../e2e/raw-http.js';

/**
 * Disk full while writing sessions (issue 5 item 7): the SQLite database lives on a 2 MiB tmpfs
 * (CI runs as root; if `mount` is refused the test FAILS, it never skips). The disk is filled
 * with a filler file; turns then fail with a clear error and no `done:true`; nothing stored
 * before is corrupted; once the filler is removed Parley writes again by itself, and the file
 * passes `PRAGMA integrity_check`.
 */

let h: Harness | undefined;
let dir: string | undefined;
afterEach(async () => {
  await h?.close().catch(() => undefined);
  h = undefined;
  if (dir) {
    try {
      execFileSync('umount', [dir]);
    } catch {
      // already unmounted
    }
    rmSync(dir, { recursive: true, force: true });
  }
  dir = undefined;
});

/** Writes zeros until the file system says ENOSPC; returns the filler's path. */
function fillDisk(where: string): string {
  const path = join(where, 'filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(4096);
  try {
    for (;;) writeSync(fd, block);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return path;
}

const turn = (url: string, id: string, content: string) => raw(url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content }], session_id: id } });

describe('disk full while writing sessions', () => {
  it('fails the affected turns clearly, corrupts nothing, and recovers when space is freed', async () => {
    dir = mkdtempSync(join(tmpdir(), 'parley-diskfull-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir]);
    } catch (e) {
      throw new Error(`cannot mount a tmpfs for the disk-full test (needs root): ${(e as Error).message}`);
    }
    const dbFile = join(dir, 'parley.db');
    // A model with a large context window, so the 200 kB turns below fit it (the context window
    // check would refuse them before any database write otherwise).
    h = await startHarness({ sim: { replyTokens: 30, models: [{ name: 'llama3.2:latest', contextLength: 131_072 }] }, config: { databaseUrl: dbFile } });
    const acknowledged: Array<{ id: string; content: string }> = [];
    const ok = await turn(h.url, 'before', 'stored before the disk filled');
    expect(ndjson(ok.text).at(-1)).toMatchObject({ done: true });
    acknowledged.push({ id: 'before', content: 'stored before the disk filled' });

    const filler = fillDisk(dir);
    // Large turns, so each one needs new pages (a small one may fit in free pages of the file).
    let failed = 0;
    for (let i = 0; i < 10; i++) {
      const big = `full-${i} ` + 'x'.repeat(200_000);
      const r = await turn(h.url, `full${i}`, big);
      const lines = r.status === 200 ? ndjson(r.text) : [];
      if (r.status === 200 && lines.at(-1)?.done === true) {
        acknowledged.push({ id: `full${i}`, content: big });
        continue;
      }
      failed++;
      const error = r.status === 200 ? (lines.at(-1)!.error as string) : (JSON.parse(r.text).error as string);
      expect(error).toMatch(/^database unavailable: \w+ failed$/);
      if (r.status !== 200) expect(r.status).toBe(503);
    }
    console.log(`[chaos] disk full: ${failed} of 10 large turns failed clearly, ${10 - failed} fitted`);
    expect(failed).toBeGreaterThan(0);
    const health = JSON.parse((await raw(h.url, '/api/health')).text);
    expect(health.database).toBeDefined();

    rmSync(filler);
    // Parley writes again by itself: no restart.
    const after = await turn(h.url, 'after', 'stored after space was freed');
    expect(ndjson(after.text).at(-1)).toMatchObject({ done: true });
    acknowledged.push({ id: 'after', content: 'stored after space was freed' });
    for (const a of acknowledged) {
      const s = JSON.parse((await raw(h.url, `/api/sessions/${a.id}`)).text) as { messages: Array<{ role: string; content: string; status: string }> };
      expect(s.messages[0]).toMatchObject({ role: 'user', content: a.content });
      expect(s.messages[1]).toMatchObject({ role: 'assistant', status: 'complete' });
    }
    await h.close();
    h = undefined;

    // The file opens clean.
    const db = new SQLite(dbFile);
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const n = db.prepare("select count(*) as n from messages where role = 'assistant' and status = 'complete'").get() as { n: number };
      expect(n.n).toBeGreaterThanOrEqual(acknowledged.length);
    } finally {
      db.close();
    }
  });
});
