import type { ChatRequest, ChatResponse, Message } from 'ollama';
import { afterEach, describe, expect, test } from 'vitest';
import { chatPromptTokens, startSimulator, type Simulator } from '../../src/sim/index.js';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';

/**
 * Sessions end to end: a client talking to Parley over real HTTP (ollama-js and raw fetch),
 * Parley talking to the simulator, history in a real database (SQLite, and Postgres when
 * PARLEY_TEST_POSTGRES_URL is set). The simulator records every body Parley sent, so each test
 * checks exactly what the model saw.
 */

const MODEL = 'llama3.2';
type Chunk = Record<string, unknown> & { message?: { role: string; content: string; thinking?: string }; done?: boolean; session_id?: string; error?: string };
type SessionChat = ChatResponse & { session_id: string };

interface WireSession {
  session_id: string;
  status: string;
  model: string | null;
  created_at: string;
  updated_at: string;
  last_active_at: string;
  archived_at: string | null;
  message_count: number;
  messages: Array<Record<string, unknown> & { role: string; content: string; status: string; model: string | null }>;
}

/** The `messages` of every /api/chat request the simulator received, in order. */
function messagesSentUpstream(sim: Simulator): unknown[] {
  return sim.requests.filter((r) => r.path === '/api/chat').map((r) => (r.body as { messages: unknown }).messages);
}

function postChat(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/api/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

function ndjson(text: string): Chunk[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Chunk);
}

function replyText(chunks: Chunk[]): string {
  return chunks.map((c) => c.message?.content ?? '').join('');
}

async function getSession(url: string, id: string): Promise<WireSession> {
  const res = await fetch(`${url}/api/sessions/${encodeURIComponent(id)}`);
  expect(res.status).toBe(200);
  return (await res.json()) as WireSession;
}

/** Rows in the messages and sessions tables, read straight from the database. */
async function storedRows(h: Harness): Promise<{ sessions: number; messages: number }> {
  const db = h.app.database.db;
  const s = await db.selectFrom('sessions').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
  const m = await db.selectFrom('messages').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
  return { sessions: Number(s.n), messages: Number(m.n) };
}

describe.each(dialects)('sessions on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  /** Parley + simulator on a fresh database of this dialect (deleted when the test ends). */
  async function parley(opts: HarnessOptions = {}): Promise<Harness> {
    const h = await startHarness({ database: await dialect.open(), ...opts });
    cleanups.push(() => h.close());
    return h;
  }

  test('the model gets the whole conversation on every turn while the client sends only the new message, across a restart', async () => {
    const sim = await startSimulator({});
    cleanups.push(() => sim.close());
    const where = await dialect.location();
    cleanups.push(() => where.dispose());
    const sid = 'trip-planning.42';

    const first = await startHarness({ simulator: sim, database: await where.open() });
    cleanups.push(() => first.close());
    // Turn 1: ollama-js, stream:false (its default).
    const u1: Message = { role: 'user', content: 'My name is Ada. Please remember it.' };
    const r1 = (await first.ollama.chat({ model: MODEL, messages: [u1], session_id: sid } as ChatRequest & { stream?: false })) as SessionChat;
    expect(r1.session_id).toBe(sid);
    expect(r1.done).toBe(true);
    const a1 = { role: 'assistant', content: r1.message.content };
    expect(a1.content).not.toBe('');

    // Turn 2: ollama-js, streaming.
    const u2: Message = { role: 'user', content: 'I want to visit Lisbon in May.' };
    const stream = await first.ollama.chat({ model: MODEL, messages: [u2], session_id: sid, stream: true } as ChatRequest & { stream: true });
    let reply2 = '';
    for await (const chunk of stream) {
      expect((chunk as SessionChat).session_id).toBe(sid);
      reply2 += chunk.message.content;
    }
    const a2 = { role: 'assistant', content: reply2 };

    // Parley stops and starts again on the same database.
    await first.close();
    const second = await startHarness({ simulator: sim, database: await where.open() });
    cleanups.push(() => second.close());

    // Turn 3: raw HTTP, the id in the X-Session-Id header only.
    const u3 = { role: 'user', content: 'What is my name, and where am I going?' };
    const res = await postChat(second.url, { model: MODEL, messages: [u3] }, { 'X-Session-Id': sid });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-session-id')).toBe(sid);
    const chunks = ndjson(await res.text());
    expect(chunks.every((c) => c.session_id === sid)).toBe(true);
    expect(chunks.at(-1)?.done).toBe(true);
    const a3 = { role: 'assistant', content: replyText(chunks) };

    expect(messagesSentUpstream(sim)).toEqual([[u1], [u1, a1, u2], [u1, a1, u2, a2, u3]]);
    const session = await getSession(second.url, sid);
    expect(session.message_count).toBe(6);
    expect(session.messages.map(({ role, content, status }) => ({ role, content, status }))).toEqual(
      [u1, a1, u2, a2, u3, a3].map((m) => ({ ...m, status: 'complete' })),
    );
  });

  test('session_id "new" mints an id that comes back in X-Session-Id and on every chunk', async () => {
    const h = await parley();
    const res = await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'Hello there' }], session_id: 'new' });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-session-id');
    expect(id).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    expect(id).not.toBe('new');
    const chunks = ndjson(await res.text());
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) expect(c.session_id).toBe(id);

    const session = await getSession(h.url, id!);
    expect(session.session_id).toBe(id);
    expect(session.messages.map((m) => m.role)).toEqual(['user', 'assistant']);

    const again = await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'Hello again' }], session_id: 'new' });
    await again.text();
    expect(again.headers.get('x-session-id')).not.toBe(id);
  });

  test('the session_id in the body wins over the X-Session-Id header', async () => {
    const h = await parley();
    const res = await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], session_id: 'from-body' }, { 'X-Session-Id': 'from-header' });
    expect(res.headers.get('x-session-id')).toBe('from-body');
    await res.text();
    expect((await getSession(h.url, 'from-body')).message_count).toBe(2);
    expect((await fetch(`${h.url}/api/sessions/from-header`)).status).toBe(404);
  });

  test('the model may change between turns and each stored message names the model of its turn', async () => {
    const h = await parley();
    const u1 = { role: 'user', content: 'Summarise the plot of Hamlet.' };
    const r1 = (await (await postChat(h.url, { model: 'llama3.2', messages: [u1], session_id: 'switch', stream: false })).json()) as SessionChat;
    const u2 = { role: 'user', content: 'Now think harder about it.' };
    const r2 = (await (await postChat(h.url, { model: 'qwen3', messages: [u2], session_id: 'switch', stream: false })).json()) as SessionChat;
    expect(r2.model).toBe('qwen3');
    expect(r2.message.thinking).toBeTruthy();

    const sent = h.sim.requests.filter((r) => r.path === '/api/chat').map((r) => r.body as { model: string; messages: unknown });
    expect(sent.map((b) => b.model)).toEqual(['llama3.2', 'qwen3']);
    expect(sent[1]?.messages).toEqual([u1, { role: 'assistant', content: r1.message.content }, u2]);

    const session = await getSession(h.url, 'switch');
    expect(session.model).toBe('qwen3');
    expect(session.messages.map((m) => [m.role, m.model])).toEqual([
      ['user', 'llama3.2'],
      ['assistant', 'llama3.2'],
      ['user', 'qwen3'],
      ['assistant', 'qwen3'],
    ]);
    expect(session.messages[3]).toMatchObject({ content: r2.message.content, thinking: r2.message.thinking, status: 'complete' });
  });

  test('GET /api/sessions/:id shows every message with its status, model, token counts and durations', async () => {
    const clock = new Date('2026-03-01T12:00:00.000Z');
    const h = await parley({ now: () => clock });
    const u1 = { role: 'user', content: 'Count to three, please.' };
    const res = await postChat(h.url, { model: MODEL, messages: [u1], session_id: 'counting' });
    const chunks = ndjson(await res.text());
    const final = chunks.at(-1)!;
    expect(final.done).toBe(true);

    const session = await getSession(h.url, 'counting');
    expect(session).toMatchObject({
      session_id: 'counting',
      status: 'active',
      model: MODEL,
      created_at: '2026-03-01T12:00:00.000Z',
      last_active_at: '2026-03-01T12:00:00.000Z',
      archived_at: null,
      message_count: 2,
    });
    // tokens: the upstream's exact count (prompt_eval_count of the first turn, one message).
    expect(session.messages[0]).toEqual({ role: 'user', content: u1.content, model: MODEL, status: 'complete', created_at: '2026-03-01T12:00:00.000Z', tokens: chatPromptTokens([u1], undefined), tokens_exact: true });
    expect(session.messages[1]).toEqual({
      role: 'assistant',
      content: replyText(chunks),
      model: MODEL,
      status: 'complete',
      created_at: '2026-03-01T12:00:00.000Z',
      done_reason: 'stop',
      prompt_eval_count: chatPromptTokens([u1], undefined),
      eval_count: 8,
      total_duration: final.total_duration,
      load_duration: final.load_duration,
      prompt_eval_duration: final.prompt_eval_duration,
      eval_duration: final.eval_duration,
      // eval_count + the per-message template overhead (4 until calibrated; the simulator's too).
      tokens: 8 + 4,
      tokens_exact: true,
    });
    expect(final.prompt_eval_count).toBe(chatPromptTokens([u1], undefined));
    expect(final.eval_count).toBe(8);
  });

  test('stream:false with a session answers one JSON object carrying session_id, and the turn is stored', async () => {
    const h = await parley();
    const res = await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'One answer please' }], session_id: 'whole', stream: false });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('x-session-id')).toBe('whole');
    const text = await res.text();
    expect(text.trim().split('\n')).toHaveLength(1);
    const body = JSON.parse(text) as SessionChat;
    expect(body).toMatchObject({ model: MODEL, done: true, done_reason: 'stop', session_id: 'whole', message: { role: 'assistant' } });
    expect(body.message.content.length).toBeGreaterThan(0);

    const session = await getSession(h.url, 'whole');
    expect(session.messages.map(({ role, content, status }) => ({ role, content, status }))).toEqual([
      { role: 'user', content: 'One answer please', status: 'complete' },
      { role: 'assistant', content: body.message.content, status: 'complete' },
    ]);
  });

  test('without a session_id nothing is stored and the upstream receives exactly what the client sent', async () => {
    const h = await parley();
    const body = {
      model: MODEL,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'How are you?' },
      ],
      stream: false,
      options: { temperature: 0, num_ctx: 2048 },
      keep_alive: '5m',
      some_future_field: { kept: true },
    };
    const res = await postChat(h.url, body);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-session-id')).toBeNull();
    const answer = (await res.json()) as Record<string, unknown>;
    expect(answer).not.toHaveProperty('session_id');
    expect(answer.done).toBe(true);

    const streamed = await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'And streaming?' }] });
    const chunks = ndjson(await streamed.text());
    expect(chunks.some((c) => 'session_id' in c)).toBe(false);

    const sent = h.sim.requests.filter((r) => r.path === '/api/chat').map((r) => r.body);
    expect(sent).toEqual([body, { model: MODEL, messages: [{ role: 'user', content: 'And streaming?' }] }]);
    expect(await storedRows(h)).toEqual({ sessions: 0, messages: 0 });
  });

  test('an invalid session id is refused with 400 "invalid session_id" and nothing is stored or sent upstream', async () => {
    const h = await parley();
    const message = [{ role: 'user', content: 'Hi' }];
    const bad: Array<{ body?: unknown; header?: string }> = [
      { body: 'a b' },
      { body: 'x'.repeat(200) },
      { body: 42 },
      { body: '' },
      { body: 'café' },
      { body: '../etc' },
      { header: 'a b' },
    ];
    for (const { body, header } of bad) {
      const res = await postChat(h.url, { model: MODEL, messages: message, ...(body !== undefined ? { session_id: body } : {}) }, header ? { 'X-Session-Id': header } : {});
      expect(res.status, JSON.stringify(body ?? header)).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      const answer = (await res.json()) as { error: string };
      expect(answer.error).toMatch(/^invalid session_id/);
    }
    expect(h.sim.requests.filter((r) => r.path === '/api/chat')).toHaveLength(0);
    expect(await storedRows(h)).toEqual({ sessions: 0, messages: 0 });

    // The longest allowed id (128 characters) is fine, and readable back even percent-encoded.
    const longest = 'ab:'.repeat(41) + 'x.-_Z';
    expect(longest).toHaveLength(128);
    const ok = await postChat(h.url, { model: MODEL, messages: message, session_id: longest });
    expect(ok.status).toBe(200);
    await ok.text();
    expect((await getSession(h.url, longest)).message_count).toBe(2);
  });

  test('GET of a session that does not exist answers 404 with Ollama-style error JSON', async () => {
    const h = await parley();
    const res = await fetch(`${h.url}/api/sessions/never-seen`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "session 'never-seen' not found" });
  });

  test('an idle session is archived after idleExpiryMs, stays readable, and a new message reopens it', async () => {
    let now = Date.parse('2026-05-01T09:00:00.000Z');
    const h = await parley({ now: () => new Date(now), config: { sessions: { idleExpiryMs: 60_000 } } });
    const u1 = { role: 'user', content: 'Note: the door code is 1234.' };
    const first = (await (await postChat(h.url, { model: MODEL, messages: [u1], session_id: 'sleepy', stream: false })).json()) as SessionChat;
    now += 40_000;
    await (await postChat(h.url, { model: MODEL, messages: [{ role: 'user', content: 'still here' }], session_id: 'lively', stream: false })).text();

    now += 21_000; // 'sleepy' idle 61 s, 'lively' 21 s
    expect(await h.app.sessions.sweep()).toBe(1);
    const archived = await getSession(h.url, 'sleepy');
    expect(archived.status).toBe('archived');
    expect(archived.archived_at).toBe(new Date(now).toISOString());
    expect(archived.messages.map((m) => m.content)).toEqual([u1.content, first.message.content]);
    expect((await getSession(h.url, 'lively')).status).toBe('active');

    now += 1_000;
    const u2 = { role: 'user', content: 'What was the door code?' };
    const res = await postChat(h.url, { model: MODEL, messages: [u2], session_id: 'sleepy' });
    expect(res.status).toBe(200);
    await res.text();
    expect(messagesSentUpstream(h.sim).at(-1)).toEqual([u1, { role: 'assistant', content: first.message.content }, u2]);
    const reopened = await getSession(h.url, 'sleepy');
    expect(reopened).toMatchObject({ status: 'active', archived_at: null, last_active_at: new Date(now).toISOString(), message_count: 4 });
  });

  test('a reply cut by an upstream failure mid-stream is stored incomplete with its partial text and left out of the next turn', async () => {
    const h = await parley({ sim: { faults: { errorAfterTokens: 3 } } });
    const u1 = { role: 'user', content: 'Tell me a long story.' };
    const res = await postChat(h.url, { model: MODEL, messages: [u1], session_id: 'cut' });
    expect(res.status).toBe(200);
    const lines = ndjson(await res.text());
    expect(lines.at(-1)).toEqual({ error: 'simulated mid-stream failure' });
    const replies = lines.slice(0, -1);
    expect(replies).toHaveLength(3);
    expect(lines.some((l) => l.done === true)).toBe(false);
    const partial = replyText(replies);
    expect(partial).not.toBe('');

    const afterFailure = await getSession(h.url, 'cut');
    // An incomplete reply has no upstream count: it carries an estimate.
    expect(afterFailure.messages[1]).toEqual({ role: 'assistant', content: partial, model: MODEL, status: 'incomplete', created_at: expect.any(String), tokens: expect.any(Number), tokens_exact: false });

    h.sim.setFaults({});
    const u2 = { role: 'user', content: 'Try again, please.' };
    const again = ndjson(await (await postChat(h.url, { model: MODEL, messages: [u2], session_id: 'cut' })).text());
    expect(again.at(-1)?.done).toBe(true);
    expect(messagesSentUpstream(h.sim).at(-1)).toEqual([u1, u2]);
    const session = await getSession(h.url, 'cut');
    expect(session.messages.map(({ role, content, status }) => ({ role, content, status }))).toEqual([
      { role: 'user', content: u1.content, status: 'complete' },
      { role: 'assistant', content: partial, status: 'incomplete' },
      { role: 'user', content: u2.content, status: 'complete' },
      { role: 'assistant', content: replyText(again), status: 'complete' },
    ]);
  });
});
