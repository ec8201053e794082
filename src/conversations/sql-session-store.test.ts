import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../../test/helpers/databases.js';
import type { Database } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import type { ReplyMetrics } from './session-store.js';
import { SqlSessionStore } from './sql-session-store.js';

/** 2026-11-21T12:00:00.000Z plus `s` seconds. */
const at = (s: number): string => new Date(Date.UTC(2026, 10, 21, 12, 0, 0) + s * 1000).toISOString();

const METRICS: ReplyMetrics = {
  doneReason: 'stop',
  promptTokens: 26,
  completionTokens: 298,
  // above 2^32, so int4 or a lost bigint conversion would show
  totalDurationNs: 4_883_583_458_123,
  loadDurationNs: 1_019_500,
  promptEvalDurationNs: 8_000_000_000,
  evalDurationNs: 4_000_000_001,
};

describe.each(dialects)('SqlSessionStore on $name', ({ open, location }) => {
  let database: Database;
  let store: SqlSessionStore;
  beforeEach(async () => {
    database = await open();
    await migrateToLatest(database);
    store = new SqlSessionStore(database);
  });
  afterEach(async () => {
    await store.close();
  });

  it('returns undefined and no messages for a session it never stored', async () => {
    expect(await store.getSession('nope')).toBeUndefined();
    expect(await store.listMessages('nope')).toEqual([]);
  });

  it('creates a session and its conversation once, however often ensureSession is called', async () => {
    const first = await store.ensureSession('s1', 'llama3.2', at(0));
    expect(first).toEqual({
      id: 's1',
      conversationId: expect.any(String),
      title: null,
      model: 'llama3.2',
      status: 'active',
      createdAt: at(0),
      updatedAt: at(0),
      lastActiveAt: at(0),
      archivedAt: null,
      messageCount: 0,
    });
    expect(await store.ensureSession('s1', 'other', at(5))).toEqual(first);
    expect(await store.getSession('s1')).toEqual(first);
    const second = await store.ensureSession('s2', 'llama3.2', at(0));
    expect(second.conversationId).not.toBe(first.conversationId);
  });

  it('gives conversations UUIDs in creation order, so their index entries append instead of landing on random pages', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await store.ensureSession(`order-${i}`, 'llama3.2', at(0))).conversationId);
    expect(ids.every((id) => /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id))).toBe(true);
    expect([...ids].sort()).toEqual(ids);
  });

  it('round-trips a turn: placeholder, partial save, completion with metrics, tool calls and images', async () => {
    const { assistantMessageId } = await store.beginTurn({
      sessionId: 's1',
      model: 'llava',
      now: at(1),
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is in this picture?', images: ['aGVsbG8=', 'd29ybGQ='] },
      ],
    });
    let messages = await store.listMessages('s1');
    expect(messages.map((m) => [m.seq, m.role, m.content, m.status])).toEqual([
      [1, 'system', 'Be brief.', 'complete'],
      [2, 'user', 'What is in this picture?', 'complete'],
      [3, 'assistant', '', 'incomplete'],
    ]);
    expect(messages[1]?.images).toEqual(['aGVsbG8=', 'd29ybGQ=']);
    expect(messages[2]?.id).toBe(assistantMessageId);

    await store.savePartial(assistantMessageId, 'A cat', 'looking…', at(2));
    messages = await store.listMessages('s1');
    expect(messages[2]).toMatchObject({ content: 'A cat', thinking: 'looking…', status: 'incomplete', metrics: null, updatedAt: at(2) });

    const toolCalls = [{ function: { name: 'get_weather', arguments: { city: 'Paris', days: 2 } } }];
    await store.completeTurn(assistantMessageId, { status: 'complete', content: 'A cat on a mat.', thinking: 'looked', toolCalls, metrics: METRICS, now: at(3) });
    messages = await store.listMessages('s1');
    expect(messages[2]).toEqual({
      id: assistantMessageId,
      sessionId: 's1',
      seq: 3,
      role: 'assistant',
      content: 'A cat on a mat.',
      thinking: 'looked',
      tool_calls: toolCalls,
      model: 'llava',
      status: 'complete',
      metrics: METRICS,
      createdAt: at(1),
      updatedAt: at(3),
    });
    expect(typeof messages[2]?.metrics?.totalDurationNs).toBe('number');
    expect(messages[0]).toEqual({
      id: expect.any(Number), sessionId: 's1', seq: 1, role: 'system', content: 'Be brief.', model: 'llava',
      status: 'complete', metrics: null, createdAt: at(1), updatedAt: at(1),
    });
    expect(await store.getSession('s1')).toMatchObject({ model: 'llava', messageCount: 3, lastActiveAt: at(1), updatedAt: at(1), status: 'active' });
  });

  it('keeps what arrived when a turn ends incomplete, and a late partial save cannot overwrite a finished reply', async () => {
    const a = await store.beginTurn({ sessionId: 's1', model: 'm', now: at(1), messages: [{ role: 'user', content: 'hi' }] });
    await store.savePartial(a.assistantMessageId, 'Hel', undefined, at(2));
    await store.completeTurn(a.assistantMessageId, { status: 'incomplete', content: 'Hello', metrics: null, now: at(3) });
    await store.savePartial(a.assistantMessageId, 'Hel', undefined, at(2)); // deferred save landing late
    const b = await store.beginTurn({ sessionId: 's1', model: 'm', now: at(4), messages: [{ role: 'user', content: 'again' }] });
    await store.completeTurn(b.assistantMessageId, { status: 'complete', content: 'Done.', metrics: METRICS, now: at(5) });
    await store.savePartial(b.assistantMessageId, 'Do', undefined, at(6));
    const messages = await store.listMessages('s1');
    expect(messages.map((m) => [m.content, m.status, m.metrics === null])).toEqual([
      ['hi', 'complete', true],
      ['Hello', 'incomplete', true],
      ['again', 'complete', true],
      ['Done.', 'complete', false],
    ]);
  });

  it('rejects completing a message that is not an assistant message', async () => {
    await expect(store.completeTurn(9_999, { status: 'complete', content: 'x', metrics: null, now: at(1) })).rejects.toMatchObject({
      code: 'PARLEY_ERR_INTERNAL',
    });
  });

  it('numbers messages 1, 2, 3, … across turns and stores tool messages', async () => {
    const ids: number[] = [];
    for (let turn = 0; turn < 3; turn++) {
      const { assistantMessageId } = await store.beginTurn({
        sessionId: 's1',
        model: 'qwen3',
        now: at(turn * 10),
        messages: turn === 2
          ? [{ role: 'tool', content: '{"temp":21}', tool_name: 'get_weather', tool_call_id: 'call_1' }]
          : [{ role: 'user', content: `question ${turn}` }],
      });
      await store.completeTurn(assistantMessageId, { status: 'complete', content: `answer ${turn}`, metrics: null, now: at(turn * 10 + 1) });
      ids.push(assistantMessageId);
    }
    const messages = await store.listMessages('s1');
    expect(messages.map((m) => [m.seq, m.role, m.content])).toEqual([
      [1, 'user', 'question 0'],
      [2, 'assistant', 'answer 0'],
      [3, 'user', 'question 1'],
      [4, 'assistant', 'answer 1'],
      [5, 'tool', '{"temp":21}'],
      [6, 'assistant', 'answer 2'],
    ]);
    expect(messages[4]).toMatchObject({ tool_name: 'get_weather', tool_call_id: 'call_1' });
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(await store.getSession('s1')).toMatchObject({ messageCount: 6, lastActiveAt: at(20) });
  });

  it.each([
    ['an existing session', true],
    ['a brand-new session', false],
  ])('gives 20 concurrent turns on %s unique, contiguous seq values', async (_label, existing) => {
    if (existing) await store.ensureSession('s1', 'm', at(0));
    const turns = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        store.beginTurn({ sessionId: 's1', model: 'm', now: at(1), messages: [{ role: 'user', content: `q${i}` }] }),
      ),
    );
    const messages = await store.listMessages('s1');
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(new Set(turns.map((t) => t.assistantMessageId)).size).toBe(20);
    // each turn's user message is immediately followed by its own placeholder
    for (let i = 0; i < 40; i += 2) {
      expect([messages[i]?.role, messages[i + 1]?.role, messages[i + 1]?.status]).toEqual(['user', 'assistant', 'incomplete']);
    }
    expect(await store.getSession('s1')).toMatchObject({ messageCount: 40 });
    const conversations = await database.db.selectFrom('conversations').select('id').execute();
    expect(conversations).toHaveLength(1);
  });

  it('archives only sessions idle since before the cut-off, keeps their messages, and reactivates on the next turn', async () => {
    await store.beginTurn({ sessionId: 'idle', model: 'm', now: at(0), messages: [{ role: 'user', content: 'old' }] });
    await store.beginTurn({ sessionId: 'busy', model: 'm', now: at(100), messages: [{ role: 'user', content: 'new' }] });
    await store.ensureSession('edge', 'm', at(50)); // exactly at the cut-off: not idle

    expect(await store.archiveIdle(at(50), at(200))).toBe(1);
    expect(await store.archiveIdle(at(50), at(201))).toBe(0);
    expect(await store.getSession('idle')).toMatchObject({ status: 'archived', archivedAt: at(200) });
    expect(await store.getSession('busy')).toMatchObject({ status: 'active', archivedAt: null });
    expect(await store.getSession('edge')).toMatchObject({ status: 'active' });
    expect((await store.listMessages('idle')).map((m) => m.content)).toEqual(['old', '']);
    const archivedConversations = await database.db.selectFrom('conversations').select('archived_at').where('archived_at', 'is not', null).execute();
    expect(archivedConversations).toEqual([{ archived_at: at(200) }]);

    await store.beginTurn({ sessionId: 'idle', model: 'm', now: at(300), messages: [{ role: 'user', content: 'back' }] });
    expect(await store.getSession('idle')).toMatchObject({ status: 'active', archivedAt: null, lastActiveAt: at(300), messageCount: 4 });
    expect((await store.listMessages('idle')).map((m) => m.seq)).toEqual([1, 2, 3, 4]);
  });

  it('reactivates an archived session on ensureSession, moving lastActiveAt so the next sweep spares it', async () => {
    await store.ensureSession('s1', 'm', at(0));
    await store.archiveIdle(at(10), at(10));
    const back = await store.ensureSession('s1', 'm', at(20));
    expect(back).toMatchObject({ status: 'active', archivedAt: null, lastActiveAt: at(20), updatedAt: at(20), createdAt: at(0) });
    expect(await store.archiveIdle(at(15), at(21))).toBe(0);
    const conversation = await database.db.selectFrom('conversations').select('archived_at').executeTakeFirst();
    expect(conversation).toEqual({ archived_at: null });
  });

  it('still has every message after the database is closed and opened again', async () => {
    const where = await location();
    const first = await where.open();
    try {
      await migrateToLatest(first);
      const writer = new SqlSessionStore(first);
      const { assistantMessageId } = await writer.beginTurn({ sessionId: 's1', model: 'm', now: at(1), messages: [{ role: 'user', content: 'remember me' }] });
      await writer.completeTurn(assistantMessageId, { status: 'complete', content: 'I will.', metrics: METRICS, now: at(2) });
      await writer.close();

      const second = await where.open();
      const reader = new SqlSessionStore(second);
      try {
        expect(await migrateToLatest(second)).toEqual([]);
        expect((await reader.listMessages('s1')).map((m) => [m.content, m.status, m.metrics])).toEqual([
          ['remember me', 'complete', null],
          ['I will.', 'complete', METRICS],
        ]);
        expect(await reader.getSession('s1')).toMatchObject({ messageCount: 2 });
      } finally {
        await reader.close();
      }
    } finally {
      await first.close();
      await where.dispose();
    }
  });

  it('answers PARLEY_ERR_STORAGE_UNAVAILABLE for every call once the database is closed, and ping says false', async () => {
    expect(await store.ping()).toBe(true);
    await database.close();
    expect(await store.ping()).toBe(false);
    const unavailable = { code: 'PARLEY_ERR_STORAGE_UNAVAILABLE', status: 503, retryable: true, message: expect.stringMatching(/^database unavailable: /) };
    await expect(store.getSession('s1')).rejects.toMatchObject(unavailable);
    await expect(store.ensureSession('s1', 'm', at(0))).rejects.toMatchObject(unavailable);
    await expect(store.listMessages('s1')).rejects.toMatchObject(unavailable);
    await expect(store.beginTurn({ sessionId: 's1', model: 'm', now: at(0), messages: [] })).rejects.toMatchObject(unavailable);
    await expect(store.savePartial(1, 'x', undefined, at(0))).rejects.toMatchObject(unavailable);
    await expect(store.completeTurn(1, { status: 'complete', content: 'x', metrics: null, now: at(0) })).rejects.toMatchObject(unavailable);
    await expect(store.archiveIdle(at(0), at(0))).rejects.toMatchObject(unavailable);
    await expect(store.getSession('s1')).rejects.toHaveProperty('cause');
  });
});
