import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../../test/helpers/databases.js';
import { openDatabase, type Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import { AuditStore } from './audit-store.js';
import { BudgetService } from './budget-service.js';
import { KeyService, hashKey } from './key-service.js';
import { UsageStore } from './usage-store.js';

describe.each(dialects)('usage stores on $name', ({ open }) => {
  let database: Database;
  beforeEach(async () => {
    database = await open();
    await migrateToLatest(database);
  });
  afterEach(async () => {
    await database.close();
  });

  const keyService = () => new KeyService(database, { tiers: () => ['free', 'premium'], defaultTier: () => 'free', now: () => new Date('2026-03-10T12:00:00.000Z') });

  it('stores only the SHA-256 of a key, resolves it, changes its tier, and refuses it once revoked', async () => {
    const keys = keyService();
    expect(await keys.hasActiveKeys()).toBe(false);
    const k = await keys.create({ name: 'alice', tier: 'premium' });
    const rows = await database.db.selectFrom('api_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.key_hash).toBe(hashKey(k.key));
    expect(JSON.stringify(rows).includes(k.key)).toBe(false);
    expect(await keys.resolve(k.key)).toEqual({ keyId: k.id, name: 'alice', tier: 'premium', admin: false, prefix: k.prefix });
    expect((await keys.setTier(k.id, 'free')).tier).toBe('free');
    expect((await keys.resolve(k.key)).tier).toBe('free');
    await expect(keys.setTier(k.id, 'gold')).rejects.toMatchObject({ code: 'PARLEY_ERR_REQUEST_INVALID', message: 'invalid tier: must be one of free, premium' });
    expect((await keys.get(k.id))!.tier).toBe('free');
    await keys.revoke(k.id);
    await expect(keys.resolve(k.key)).rejects.toMatchObject({ code: 'PARLEY_ERR_AUTH_INVALID_KEY' });
    await expect(keys.revoke(k.id)).rejects.toMatchObject({ code: 'PARLEY_ERR_ADMIN_NOT_FOUND' });
    expect(await keys.hasActiveKeys()).toBe(false);
    await expect(keys.create({ name: 'bob', tier: 'gold' })).rejects.toMatchObject({ message: 'invalid tier: must be one of free, premium' });
    expect(await keys.list()).toHaveLength(1);
  });

  it('adds usage per key, day and model atomically and sums a key\'s day', async () => {
    const usage = new UsageStore(database);
    const d = { requests: 1, promptTokens: 10, replyTokens: 5, errors: 0, durationMs: 12 };
    await Promise.all([usage.add('k1', 'm:latest', '2026-03-10', d), usage.add('k1', 'm:latest', '2026-03-10', { ...d, errors: 1 }), usage.add('k1', 'n:latest', '2026-03-10', d), usage.add('k1', 'm:latest', '2026-03-11', d)]);
    expect(await usage.tokensOn('k1', '2026-03-10')).toBe(45);
    expect(await usage.tokensOn('k2', '2026-03-10')).toBe(0);
    expect(await usage.query({ keyId: 'k1', from: '2026-03-10', to: '2026-03-10', model: 'm:latest' })).toEqual([
      { keyId: 'k1', model: 'm:latest', day: '2026-03-10', requests: 2, promptTokens: 20, replyTokens: 10, errors: 1, durationMs: 24 },
    ]);
    expect((await usage.query({})).map((r) => `${r.day} ${r.model}`)).toEqual(['2026-03-10 m:latest', '2026-03-10 n:latest', '2026-03-11 m:latest']);
  });

  it('holds budget at admission, settles to the real count, starts from the stored day after a restart, and resets at UTC midnight', async () => {
    const usage = new UsageStore(database);
    await usage.add('k1', 'm:latest', '2026-03-10', { requests: 1, promptTokens: 60, replyTokens: 20, errors: 0, durationMs: 1 });
    let t = new Date('2026-03-10T23:59:00.000Z');
    const budgets = new BudgetService(usage, () => t);
    const hold = await budgets.hold('k1', 'free', 100, 15);
    await expect(budgets.hold('k1', 'free', 100, 10)).rejects.toMatchObject({
      code: 'PARLEY_ERR_USAGE_BUDGET_EXCEEDED',
      message: 'token budget exceeded: used 95 of 100 tokens today (tier free); this request needs up to 10; the budget resets at 2026-03-11T00:00:00.000Z',
      headers: { 'Retry-After': '60', 'X-Parley-Budget-Used': '95', 'X-Parley-Budget-Limit': '100', 'X-Parley-Budget-Reset': '2026-03-11T00:00:00.000Z' },
    });
    budgets.settle(hold, 12);
    budgets.settle(hold, 12);
    expect(await budgets.usedToday('k1')).toBe(92);
    t = new Date('2026-03-11T00:00:00.000Z');
    expect(await budgets.usedToday('k1')).toBe(0);
    await budgets.hold('k1', 'free', 100, 100);
  });

  it('appends audit entries newest first and records the first key that used a session', async () => {
    const audit = new AuditStore(database);
    await audit.append({ at: '2026-03-10T12:00:00.000Z', actor: 'admin-token', action: 'POST /admin/keys', target: 'k1', status: 201, details: { tier: 'free' } });
    await audit.append({ at: '2026-03-10T12:00:01.000Z', actor: 'unauthenticated', action: 'GET /admin/queue', target: null, status: 401, details: null });
    expect((await audit.list(10)).map((e) => [e.actor, e.status, e.details])).toEqual([['unauthenticated', 401, null], ['admin-token', 201, { tier: 'free' }]]);
    await audit.ownSession('s1', 'k1', '2026-03-10T12:00:00.000Z');
    await audit.ownSession('s1', 'k2', '2026-03-10T12:00:02.000Z');
    expect(await audit.ownerOf('s1')).toBe('k1');
    expect(await audit.sessionsOf('k1')).toEqual([{ sessionId: 's1', createdAt: '2026-03-10T12:00:00.000Z' }]);
  });
});

describe('API keys resolved from memory on SQLite', () => {
  let dir: string;
  let mine: Database;
  let theirs: Database;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-keys-'));
    mine = await openDatabase(join(dir, 'parley.db'));
    await migrateToLatest(mine);
    // Another connection to the same file: what `parley keys` in another process is.
    theirs = await openDatabase(join(dir, 'parley.db'));
  });
  afterEach(async () => {
    await mine.close();
    await theirs.close();
    await rm(dir, { recursive: true, force: true });
  });

  const service = (database: Database) => new KeyService(database, { tiers: () => ['free', 'premium'], defaultTier: () => 'free' });

  it('answers a resolved key without reading it again, and sees another connection\'s revoke, re-tier and new key at the next request', async () => {
    const server = service(mine);
    const cli = service(theirs);
    const a = await cli.create({ name: 'alice', tier: 'premium' });
    const later = 'pk_0123abcd_' + 'A'.repeat(43);
    await expect(server.resolve(later)).rejects.toMatchObject({ code: 'PARLEY_ERR_AUTH_INVALID_KEY' });
    expect((await server.resolve(a.key)).tier).toBe('premium');

    // Served from memory: the row is gone behind SQLite's back (a raw delete on this very
    // connection does not change data_version), and the key still resolves.
    await sql`delete from api_keys where id = ${a.id}`.execute(mine.db);
    expect((await server.resolve(a.key)).name).toBe('alice');
    await sql`insert into api_keys (id, name, prefix, key_hash, tier, is_admin, created_at, revoked_at) values (${a.id}, 'alice', ${a.prefix}, ${hashKey(a.key)}, 'premium', 0, ${a.createdAt}, null)`.execute(mine.db);

    await cli.setTier(a.id, 'free');
    expect((await server.resolve(a.key)).tier).toBe('free');
    await cli.revoke(a.id);
    await expect(server.resolve(a.key)).rejects.toMatchObject({ code: 'PARLEY_ERR_AUTH_INVALID_KEY' });
    const b = await cli.create({ name: 'bob' });
    expect((await server.resolve(b.key)).name).toBe('bob');
  });
});
