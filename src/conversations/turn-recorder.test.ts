import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqliteDialect } from '../../test/helpers/databases.js';
import type { Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import { SessionService } from './session-service.js';
import type { SessionStore } from './session-store.js';
import { SqlSessionStore } from './sql-session-store.js';
import { partialSaveDelayMs } from './turn-recorder.js';

const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } } as never;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('partialSaveDelayMs', () => {
  it('waits at least the interval and at most a tenth more, ending on a multiple of the tenth', () => {
    for (const nowMs of [1_795_000_000_000, 1_795_000_000_001, 1_795_000_000_099, 1_795_000_000_100, 1_795_000_000_150]) {
      const delay = partialSaveDelayMs(1000, nowMs);
      expect(delay).toBeGreaterThanOrEqual(1000);
      expect(delay).toBeLessThan(1100);
      expect((nowMs + delay) % 100).toBe(0);
    }
    // Two replies whose first chunks came 30 ms apart, in the same tenth: due at the same moment.
    expect(1_795_000_000_010 + partialSaveDelayMs(1000, 1_795_000_000_010)).toBe(1_795_000_000_040 + partialSaveDelayMs(1000, 1_795_000_000_040));
    expect(partialSaveDelayMs(5, 1_795_000_000_003)).toBe(5);
  });
});

describe('TurnRecorder partial saves on SQLite', () => {
  let database: Database;
  let service: SessionService;
  const saves: Array<{ id: number; atMs: number }> = [];
  beforeEach(async () => {
    database = await sqliteDialect.open();
    await migrateToLatest(database);
    const sql = new SqlSessionStore(database);
    // The real store, with the moment of each partial save noted.
    const store: SessionStore = Object.assign(Object.create(sql) as SessionStore, {
      savePartial: (id: number, content: string, thinking: string | undefined, now: string) => {
        saves.push({ id, atMs: performance.now() });
        return sql.savePartial(id, content, thinking, now);
      },
    });
    service = new SessionService(store, { idleExpiryMs: 1e9, sweepIntervalMs: 0, partialSaveIntervalMs: 1000, now: () => new Date() }, silent);
    saves.length = 0;
  });
  afterEach(async () => {
    await database.close();
  });

  it('saves streams that started 20 ms apart in the same turn of the event loop (one group commit), each with its own text', async () => {
    const a = service.recorder('a', 'llama3.2', [{ role: 'user', content: 'one' }]);
    const b = service.recorder('b', 'llama3.2', [{ role: 'user', content: 'two' }]);
    await Promise.all([a.stored(), b.stored()]);
    // Start early in a tenth of the interval (due times round up to the next multiple of 100 ms),
    // so that 20 ms later is still in the same tenth.
    while (Date.now() % 100 < 1 || Date.now() % 100 > 10) await sleep(1);
    const startedAt = performance.now();
    a.add({ content: 'first reply, so far' });
    await sleep(20);
    b.add({ content: 'second reply, so far' });
    while (saves.length < 2 && performance.now() - startedAt < 3000) await sleep(10);
    expect(saves).toHaveLength(2);
    expect(saves[0]!.atMs - startedAt).toBeGreaterThanOrEqual(999);
    expect(Math.abs(saves[1]!.atMs - saves[0]!.atMs)).toBeLessThan(5);
    await sleep(20);
    const partial = async (id: string) => (await service.get(id))?.messages.find((m) => m.role === 'assistant');
    expect(await partial('a')).toMatchObject({ content: 'first reply, so far', status: 'incomplete' });
    expect(await partial('b')).toMatchObject({ content: 'second reply, so far', status: 'incomplete' });
    await Promise.all([a.finish('incomplete', null), b.finish('incomplete', null)]);
  });
});
