import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../../test/helpers/databases.js';
import type { Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import { SessionService } from './session-service.js';
import type { ReplyMetrics } from './session-store.js';
import { SqlSessionStore } from './sql-session-store.js';

const METRICS: ReplyMetrics = { doneReason: 'stop', promptTokens: 30, completionTokens: 8, totalDurationNs: 5, loadDurationNs: 1, promptEvalDurationNs: 2, evalDurationNs: 2 };
const silent = { info() {}, warn() {}, error() {}, debug() {}, child() { return silent; } } as never;

describe.each(dialects)('SessionService history cache on $name', ({ open }) => {
  let database: Database;
  let service: SessionService;
  let other: SessionService;
  let t = 0;
  const now = () => new Date(Date.UTC(2026, 10, 21, 12, 0, 0, t++));
  beforeEach(async () => {
    database = await open();
    await migrateToLatest(database);
    const store = new SqlSessionStore(database);
    service = new SessionService(store, { idleExpiryMs: 1e9, sweepIntervalMs: 0, partialSaveIntervalMs: 0, now }, silent);
    // A second process writing the same database: its own cache, the same store.
    other = new SessionService(store, { idleExpiryMs: 1e9, sweepIntervalMs: 0, partialSaveIntervalMs: 0, now }, silent);
  });
  afterEach(async () => {
    await database.close();
  });

  const fresh = async (id: string) => (await database.db.selectFrom('sessions').select('id').where('id', '=', id).executeTakeFirst()) === undefined
    ? []
    : (await new SqlSessionStore(database).listMessages(id)).filter((m) => !(m.role === 'assistant' && m.status !== 'complete'));

  /** One turn; `deferred`: as a stream:false reply, never `stored()` before `finish()` (one transaction). */
  async function turn(s: SessionService, id: string, content: string, complete = true, tokens = true, deferred = false): Promise<void> {
    await s.sendable(id);
    const r = s.recorder(id, 'llama3.2', [{ role: 'user', content, images: ['aGk='] }, { role: 'tool', content: 'x', tool_name: 'f' }]);
    if (tokens) r.accountWith((turn) => [...turn.messageIds.map((mid, i) => ({ id: mid, tokens: 10 + i, exact: true })), { id: turn.assistantMessageId, tokens: 7, exact: false }]);
    if (!deferred) await r.stored();
    r.add({ content: `reply to ${content}`, thinking: 'hm', tool_calls: [{ function: { name: 'f', arguments: {} } }] });
    await r.finish(complete ? 'complete' : 'incomplete', complete ? METRICS : null);
  }

  it('gives exactly what the database holds after this process\'s turns, complete and incomplete, with token counts', async () => {
    await service.create('s1', 'llama3.2');
    expect(await service.sendable('s1')).toEqual([]);
    await turn(service, 's1', 'one');
    await turn(service, 's1', 'two', false);
    await turn(service, 's1', 'three', true, false);
    expect(service.historyCache.peek('s1')?.messages.length).toBe(8);
    expect(await service.sendable('s1')).toEqual(await fresh('s1'));
    const stored = await service.get('s1');
    expect(stored?.session.title).toBe('one');
  });

  it('titles a new conversation from its first user message only once an exchange completes, begun or deferred, from either process', async () => {
    for (const deferred of [false, true]) {
      const id = `titled-${deferred}`;
      // An incomplete first turn leaves it untitled; the next complete turn (from a process that
      // never saw the first) titles it from the conversation's first user message, not its own.
      await turn(service, id, 'first question', false, true, deferred);
      expect((await service.get(id))?.session.title).toBeNull();
      await turn(other, id, 'second question', true, true, deferred);
      expect((await service.get(id))?.session.title).toBe('first question');
      // A complete first turn titles its conversation at once.
      await turn(service, `${id}-2`, '  Plan   a trip ', true, true, deferred);
      expect((await service.get(`${id}-2`))?.session.title).toBe('Plan a trip');
    }
  });

  it('stores a turn finished before it was begun (stream:false, one transaction) exactly as a begun one, counts and title included', async () => {
    for (const [id, deferred] of [['begun', false], ['deferred', true]] as const) {
      await turn(service, id, 'one', true, true, deferred);
      await turn(service, id, 'two', false, true, deferred);
      await turn(service, id, 'three', true, false, deferred);
      expect(await service.sendable(id)).toEqual(await fresh(id));
    }
    const rows = (id: string) =>
      database.db
        .selectFrom('messages')
        .innerJoin('sessions', 'sessions.conversation_id', 'messages.conversation_id')
        .select(['messages.role', 'messages.content', 'messages.thinking', 'messages.images', 'messages.tool_calls', 'messages.tool_name', 'messages.status', 'messages.seq', 'messages.tokens', 'messages.tokens_exact', 'messages.done_reason', 'messages.prompt_tokens', 'messages.completion_tokens', 'messages.total_duration_ns', 'messages.load_duration_ns', 'messages.prompt_eval_duration_ns', 'messages.eval_duration_ns'])
        .where('sessions.id', '=', id)
        .orderBy('messages.seq')
        .execute();
    const deferredRows = await rows('deferred');
    expect(deferredRows).toHaveLength(9);
    expect(deferredRows).toEqual(await rows('begun'));
    expect((await service.get('deferred'))?.session.title).toBe('one');
    // The cached history is current after a deferred turn: the next turn reads nothing again.
    const version = await new SqlSessionStore(database).historyVersion('deferred');
    expect(service.historyCache.peek('deferred')?.version).toEqual(version);
    expect(version?.messageCount).toBe(9);
  });

  it('begins a deferred turn at its first partial save, so a long stream:false reply is stored incomplete while it runs', async () => {
    const saving = new SessionService(new SqlSessionStore(database), { idleExpiryMs: 1e9, sweepIntervalMs: 0, partialSaveIntervalMs: 20, now }, silent);
    const r = saving.recorder('long', 'llama3.2', [{ role: 'user', content: 'tell me' }]);
    r.add({ content: 'once upon' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await fresh('long')).map((m) => m.role)).toEqual(['user']);
    const partial = (await new SqlSessionStore(database).listMessages('long')).map((m) => [m.role, m.content, m.status]);
    expect(partial).toEqual([
      ['user', 'tell me', 'complete'],
      ['assistant', 'once upon', 'incomplete'],
    ]);
    r.add({ content: ' a time' });
    await r.finish('complete', METRICS);
    expect((await fresh('long')).map((m) => [m.role, m.content])).toEqual([
      ['user', 'tell me'],
      ['assistant', 'once upon a time'],
    ]);
  });

  it('notices a turn written by another process and reads the history again', async () => {
    await turn(service, 's2', 'one');
    await turn(other, 's2', 'elsewhere');
    const seen = await service.sendable('s2');
    expect(seen.map((m) => m.content)).toContain('elsewhere');
    expect(seen).toEqual(await fresh('s2'));
    await turn(service, 's2', 'back');
    expect(await service.sendable('s2')).toEqual(await fresh('s2'));
  });

  it('is emptied by the evictor and bounded by its byte cap', async () => {
    await turn(service, 's3', 'one');
    expect(service.historyCache.size).toBe(1);
    service.evictCache();
    expect(service.historyCache.size).toBe(0);
    expect(await service.sendable('s3')).toEqual(await fresh('s3'));
    const tiny = new SessionService(new SqlSessionStore(database), { idleExpiryMs: 1e9, sweepIntervalMs: 0, partialSaveIntervalMs: 0, now, historyCacheMaxBytes: 2_000 }, silent);
    for (const id of ['a', 'b', 'c']) await turn(tiny, id, 'x'.repeat(300));
    expect(tiny.historyCache.bytes).toBeLessThanOrEqual(2_000);
    expect(tiny.historyCache.size).toBeLessThan(3);
  });
});
