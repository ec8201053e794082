/**
 * End to end (issue 6): `parley keys create | list | revoke` on a database file, then the key
 * against a Parley on that database: accepted while active, 401 once revoked.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI_PATH } from '../helpers/parley-process.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { raw } from './raw-http.js';

let dir: string | undefined;
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

const cli = (...args: string[]) => spawnSync(process.execPath, [CLI_PATH, ...args], { encoding: 'utf8', env: { ...process.env, PARLEY_LOG_LEVEL: 'silent' } });

describe('parley keys', () => {
  it('creates a key (printed once), lists it without the secret, and revokes it; unknown tier or id exits 2', async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-keys-'));
    const db = join(dir, 'parley.db');
    const created = cli('keys', 'create', '--name', 'alice', '--tier', 'premium', '--database', db);
    expect(created.status).toBe(0);
    const key = created.stdout.trim();
    expect(key).toMatch(/^pk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toMatch(/created key pk_[0-9a-f]{8}… id \S+ name 'alice' tier premium; it is shown only this once/);

    const listed = cli('keys', 'list', '--database', db);
    expect(listed.status).toBe(0);
    expect(listed.stdout).toContain(`${key.slice(0, 11)}\tpremium\tactive\talice`);
    expect(listed.stdout.includes(key)).toBe(false);
    const id = listed.stdout.split('\t')[0]!;

    const bad = cli('keys', 'create', '--name', 'bob', '--tier', 'gold', '--database', db);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toBe('parley: invalid tier: must be one of free, premium, enterprise\n');

    h = await startHarness({ config: { databaseUrl: db } });
    const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false };
    expect((await raw(h.url, '/api/chat', { body: chat })).status).toBe(401);
    expect((await raw(h.url, '/api/chat', { body: chat, headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    const revoked = cli('keys', 'revoke', id, '--database', db);
    expect(revoked.status).toBe(0);
    expect(revoked.stdout).toBe(`revoked ${key.slice(0, 11)} (alice)\n`);
    expect((await raw(h.url, '/api/chat', { body: chat, headers: { authorization: `Bearer ${key}` } })).status).toBe(401);
    expect(cli('keys', 'revoke', id, '--database', db).status).toBe(2);
  });
});
