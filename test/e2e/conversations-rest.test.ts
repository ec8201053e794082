import { afterEach, describe, expect, test } from 'vitest';
import { chatPromptTokens } from '../../src/sim/index.js';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { readSse, tokenText } from '../helpers/sse.js';

/**
 * The conversations REST API end to end: real HTTP to Parley, Parley to the simulator, a real
 * database per dialect (SQLite always, Postgres when PARLEY_TEST_POSTGRES_URL is set).
 */

const MODEL = 'llama3.2';
type Json = Record<string, any>;

async function call(h: Harness, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Json; text: string; headers: Headers }> {
  const res = await fetch(h.url + path, {
    method,
    headers: body === undefined ? headers : { 'Content-Type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: Json = {};
  try {
    parsed = JSON.parse(text) as Json;
  } catch {
    // markdown, SSE or empty
  }
  return { status: res.status, body: parsed, text, headers: res.headers };
}

/** Sends a message and reads the whole SSE reply. */
async function say(h: Harness, id: string, content: string, extra: Json = {}) {
  const res = await fetch(`${h.url}/api/conversations/${id}/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ content, ...extra }) });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  return readSse(res);
}

describe.each(dialects)('conversations REST API on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function parley(opts: HarnessOptions = {}): Promise<Harness> {
    const h = await startHarness({ database: await dialect.open(), ...opts });
    cleanups.push(() => h.close());
    return h;
  }

  test('create, send (SSE), metadata with token totals and an automatic title, list, rename, export', async () => {
    const h = await parley();
    const created = await call(h, 'POST', '/api/conversations', { model: MODEL });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    expect(created.body).toMatchObject({ id, session_id: id, title: null, model: MODEL, message_count: 0 });
    expect(created.headers.get('location')).toBe(`/api/conversations/${id}`);

    const question = 'What should I pack for a  week\nof hiking in the Scottish Highlands in October, given the rain?';
    const events = await say(h, id, question);
    const types = events.map((e) => e.event);
    expect(types[0]).toBe('step');
    expect(events[0]?.data).toMatchObject({ stage: 'accepted', conversation_id: id, model: MODEL });
    expect(events.find((e) => e.data.stage === 'context_built')?.data).toMatchObject({ messages: 1 });
    expect(types.at(-1)).toBe('done');
    expect(types.filter((t) => t === 'token').length).toBeGreaterThan(0);
    // Every event has an id <replyId>:<seq>, seq 1, 2, 3, … without a gap.
    const replyId = (events[0]?.data.reply_id as string) ?? '';
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => `${replyId}:${i + 1}`));
    const done = events.at(-1)!.data;
    const promptTokens = chatPromptTokens([{ content: question }], undefined);
    expect(done).toMatchObject({ done_reason: 'stop', prompt_tokens: promptTokens, completion_tokens: 8, total_tokens: promptTokens + 8 });
    expect(done.timings).toMatchObject({ total_duration_ns: expect.any(Number), elapsed_ms: expect.any(Number), first_token_ms: expect.any(Number) });

    const meta = await call(h, 'GET', `/api/conversations/${id}`);
    expect(meta.status).toBe(200);
    expect(meta.body).toMatchObject({
      id,
      title: 'What should I pack for a week of hiking in the Scottish…',
      model: MODEL,
      message_count: 2,
      tokens: { prompt: promptTokens, completion: 8, total: promptTokens + 8 },
      current_reply_id: null,
    });
    expect(Date.parse(meta.body.updated_at)).toBeGreaterThanOrEqual(Date.parse(meta.body.created_at));

    const messages = await call(h, 'GET', `/api/conversations/${id}/messages`);
    expect(messages.body.messages.map((m: Json) => [m.seq, m.role, m.status])).toEqual([[1, 'user', 'complete'], [2, 'assistant', 'complete']]);
    expect(messages.body.messages[1].content).toBe(tokenText(events));
    expect(messages.body.next_cursor).toBeNull();

    const renamed = await call(h, 'PATCH', `/api/conversations/${id}`, { title: '  Highlands   packing ' });
    expect(renamed.status).toBe(200);
    expect(renamed.body.title).toBe('Highlands packing');
    // A second exchange does not overwrite a title.
    await say(h, id, 'And for a week in May?');
    expect((await call(h, 'GET', `/api/conversations/${id}`)).body).toMatchObject({ title: 'Highlands packing', message_count: 4 });

    const json = await call(h, 'GET', `/api/conversations/${id}/export?format=json`);
    expect(json.status).toBe(200);
    expect(json.headers.get('content-disposition')).toBe(`attachment; filename="conversation-${id}.json"`);
    expect(json.body).toMatchObject({ id, title: 'Highlands packing', message_count: 4 });
    expect(json.body.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
    expect(json.body.messages[0].content).toBe(question);

    const md = await call(h, 'GET', `/api/conversations/${id}/export?format=markdown`);
    expect(md.status).toBe(200);
    expect(md.headers.get('content-type')).toMatch(/^text\/markdown/);
    expect(md.text.startsWith('# Highlands packing\n')).toBe(true);
    expect(md.text).toContain('## User\n\n' + question + '\n');
    expect(md.text).toContain(`## Assistant (${MODEL})\n\n${tokenText(events)}\n`);
    expect((await call(h, 'GET', `/api/conversations/${id}/export?format=pdf`)).status).toBe(400);
  });

  test('lists newest first in cursor pages, filters by title text, and a deleted conversation is 410, unlisted, and restorable', async () => {
    let clock = Date.UTC(2026, 0, 1);
    const h = await parley({ now: () => new Date((clock += 1000)) });
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const c = await call(h, 'POST', '/api/conversations', { model: MODEL, title: i % 5 === 0 ? `Trip to Lisbon #${i}` : `Notes ${i}` });
      ids.push(c.body.id as string);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await call(h, 'GET', `/api/conversations?limit=10${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.conversations.map((c: Json) => c.id));
      cursor = page.body.next_cursor as string | null;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());

    const lisbon = await call(h, 'GET', '/api/conversations?q=LISBON');
    expect(lisbon.body.conversations.map((c: Json) => c.title)).toEqual(['Trip to Lisbon #20', 'Trip to Lisbon #15', 'Trip to Lisbon #10', 'Trip to Lisbon #5', 'Trip to Lisbon #0']);
    expect((await call(h, 'GET', '/api/conversations?q=100%25')).body.conversations).toEqual([]);

    const gone = ids[20]!;
    const del = await call(h, 'DELETE', `/api/conversations/${gone}`);
    expect(del.status).toBe(204);
    for (const [method, path] of [
      ['GET', `/api/conversations/${gone}`],
      ['GET', `/api/conversations/${gone}/messages`],
      ['GET', `/api/conversations/${gone}/export`],
      ['PATCH', `/api/conversations/${gone}`],
      ['POST', `/api/conversations/${gone}/messages`],
    ] as const) {
      const r = await call(h, method, path, method === 'GET' ? undefined : method === 'PATCH' ? { title: 'x' } : { content: 'hello' });
      expect([method, path, r.status]).toEqual([method, path, 410]);
      expect(r.body.error).toContain('deleted');
    }
    expect((await call(h, 'GET', '/api/conversations?q=lisbon')).body.conversations.map((c: Json) => c.id)).not.toContain(gone);
    expect((await call(h, 'GET', '/api/conversations?limit=100')).body.conversations).toHaveLength(24);
    // Kept in the database, not removed.
    expect(await h.app.database.db.selectFrom('sessions').select('id').where('id', '=', gone).executeTakeFirst()).toEqual({ id: gone });

    const restored = await call(h, 'POST', `/api/conversations/${gone}/restore`);
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ id: gone, title: 'Trip to Lisbon #20' });
    expect(restored.body.deleted_at).toBeUndefined();
    expect((await call(h, 'GET', '/api/conversations?limit=100')).body.conversations).toHaveLength(25);
  });

  test('pages through 1,000 messages in both orders with no gap and no duplicate', async () => {
    const h = await parley();
    const sid = 'long-one';
    const history = Array.from({ length: 999 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: `message ${i + 1}` }));
    const res = await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: sid, stream: false, messages: history }) });
    expect(res.status).toBe(200);
    expect((await call(h, 'GET', `/api/conversations/${sid}`)).body.message_count).toBe(1000);

    for (const [order, limit, pagesExpected] of [['asc', 100, 10], ['desc', 333, 4], ['asc', 500, 2]] as const) {
      const seqs: number[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const page = await call(h, 'GET', `/api/conversations/${sid}/messages?order=${order}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.status).toBe(200);
        seqs.push(...page.body.messages.map((m: Json) => m.seq as number));
        cursor = page.body.next_cursor as string | null;
        pages++;
      } while (cursor);
      const expected = Array.from({ length: 1000 }, (_, i) => i + 1);
      expect([order, pages, seqs]).toEqual([order, pagesExpected, order === 'asc' ? expected : expected.reverse()]);
    }
    const first = await call(h, 'GET', `/api/conversations/${sid}/messages?limit=2`);
    expect(first.body.messages.map((m: Json) => m.content)).toEqual(['message 1', 'message 2']);
  });

  test('bad input: 404 unknown, 400 bad cursor, page size, order and Last-Event-ID, 413 over the size limit, 400 without a model', async () => {
    const h = await parley({ config: { conversations: { maxMessageBytes: 1000 } } });
    for (const path of ['/api/conversations/nope', '/api/conversations/nope/messages', '/api/conversations/nope/export', '/api/conversations/nope/events', '/api/conversations/%2F..%2Fetc']) {
      const r = await call(h, 'GET', path);
      expect([path, r.status]).toEqual([path, 404]);
    }
    expect((await call(h, 'POST', '/api/conversations/nope/messages', { content: 'hi', model: MODEL })).status).toBe(404);
    expect((await call(h, 'DELETE', '/api/conversations/nope')).status).toBe(404);

    const id = (await call(h, 'POST', '/api/conversations', { model: MODEL })).body.id as string;
    const other = (await call(h, 'POST', '/api/conversations', { model: MODEL })).body.id as string;
    for (const q of ['cursor=abc', 'cursor=%%%', 'cursor=eyJrIjoibSJ9', 'limit=0', 'limit=501', 'limit=ten', 'limit=1.5', 'order=sideways']) {
      const r = await call(h, 'GET', `/api/conversations/${id}/messages?${q}`);
      expect([q, r.status]).toEqual([q, 400]);
    }
    for (const q of ['cursor=abc', 'limit=0', 'limit=101']) expect((await call(h, 'GET', `/api/conversations?${q}`)).status).toBe(400);
    // A cursor from another conversation, or with the other order, is not accepted either.
    await say(h, other, 'one');
    await say(h, other, 'two');
    const page = await call(h, 'GET', `/api/conversations/${other}/messages?limit=1`);
    expect((await call(h, 'GET', `/api/conversations/${id}/messages?cursor=${page.body.next_cursor}`)).status).toBe(400);
    expect((await call(h, 'GET', `/api/conversations/${other}/messages?order=desc&cursor=${page.body.next_cursor}`)).status).toBe(400);
    const ok = await call(h, 'GET', `/api/conversations/${other}/messages?limit=1&cursor=${page.body.next_cursor}`);
    expect(ok.body.messages[0].seq).toBe(2);

    const big = 'x'.repeat(1001);
    const tooLarge = await call(h, 'POST', `/api/conversations/${id}/messages`, { content: big });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.body.error).toContain('the limit is 1000 bytes');
    expect((await call(h, 'PATCH', `/api/conversations/${id}`, { title: big })).status).toBe(413);
    expect((await call(h, 'POST', '/api/conversations', { title: big })).status).toBe(413);
    expect((await call(h, 'POST', `/api/conversations/${id}/messages`, { content: 'é'.repeat(500) })).status).toBe(200);

    // Last-Event-ID of another conversation's reply, malformed, or beyond the last event.
    const events = await say(h, other, 'three');
    const foreign = events.at(-1)!.id;
    for (const last of [foreign, 'garbage', 'rpl_00000000000000000000000000000000:1']) {
      const r = await call(h, 'GET', `/api/conversations/${id}/events`, undefined, { 'Last-Event-ID': last });
      expect([last, r.status]).toEqual([last, 400]);
    }
    const [replyId, seq] = foreign.split(':');
    expect((await call(h, 'GET', `/api/conversations/${other}/events`, undefined, { 'Last-Event-ID': `${replyId}:${Number(seq) + 5}` })).status).toBe(400);
    expect((await call(h, 'GET', `/api/conversations/${id}/events`)).status).toBe(404);

    const bare = (await call(h, 'POST', '/api/conversations', {})).body.id as string;
    const noModel = await call(h, 'POST', `/api/conversations/${bare}/messages`, { content: 'hi' });
    expect(noModel.status).toBe(400);
    expect(noModel.body.error).toContain('model is required');
    expect((await call(h, 'POST', `/api/conversations/${bare}/messages`, { content: 'hi', model: 'no-such-model' })).status).toBe(404);
    expect((await call(h, 'POST', `/api/conversations/${id}/messages`, { content: 42 })).status).toBe(400);
    expect((await call(h, 'POST', `/api/conversations/${id}/messages`, {})).status).toBe(400);
  });
});
