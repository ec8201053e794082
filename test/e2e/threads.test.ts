import type { Message } from 'ollama';
import { Ollama } from 'ollama';
import { afterEach, describe, expect, test } from 'vitest';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';

/**
 * Threads (threads.mode = thread): stock clients that re-send the whole conversation on every
 * /api/chat without a session id end up as one stored conversation per conversation.
 */

const MODEL = 'llama3.2';
type Row = { id: string };

async function threadSessions(h: Harness): Promise<string[]> {
  const rows = (await h.app.database.db.selectFrom('sessions').select('id').execute()) as Row[];
  return rows.map((r) => r.id).filter((id) => id.startsWith('thread-'));
}

async function storedMessages(h: Harness, id: string): Promise<Array<{ role: string; content: string }>> {
  const res = await fetch(`${h.url}/api/sessions/${id}`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { messages: Array<{ role: string; content: string }> };
  return body.messages.map(({ role, content }) => ({ role, content }));
}

describe.each(dialects)('threads on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function parley(opts: HarnessOptions = {}): Promise<Harness> {
    const h = await startHarness({ database: await dialect.open(), ...opts, config: { threads: { mode: 'thread' }, ...opts.config } });
    cleanups.push(() => h.close());
    return h;
  }

  test('an ollama-js conversation re-sending its history each turn is one conversation with no duplicated messages', async () => {
    const h = await parley();
    const history: Message[] = [{ role: 'system', content: 'You are terse.' }];
    for (const q of ['Hi, I am Ada.', 'What is my name?', 'Plan a day in Porto.', 'And in Braga?']) {
      history.push({ role: 'user', content: q });
      const r = await h.ollama.chat({ model: MODEL, messages: history });
      history.push({ role: 'assistant', content: r.message.content });
    }
    // What the upstream saw each turn is exactly what the client sent.
    const sent = h.sim.requests.filter((r) => r.path === '/api/chat').map((r) => (r.body as { messages: unknown[] }).messages.length);
    expect(sent).toEqual([2, 4, 6, 8]);
    const ids = await threadSessions(h);
    expect(ids).toHaveLength(1);
    expect(await storedMessages(h, ids[0]!)).toEqual(history);
  });

  test('the thread id comes back in X-Session-Id and on the chunks; stock clients can ignore both', async () => {
    const h = await parley();
    const res = await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }] }) });
    const id = res.headers.get('x-session-id');
    expect(id).toMatch(/^thread-[0-9a-f-]{36}$/);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { session_id?: string });
    expect(lines.every((l) => l.session_id === id)).toBe(true);
  });

  test('another caller, or an edited history, starts a new thread', async () => {
    const h = await parley();
    const other = new Ollama({ host: h.url, headers: { 'User-Agent': 'another-client/1.0' } });
    const u1: Message = { role: 'user', content: 'Tell me about Lisbon.' };
    const a1 = (await h.ollama.chat({ model: MODEL, messages: [u1] })).message.content;
    // Same opening from another client: its own thread.
    await other.chat({ model: MODEL, messages: [u1] });
    // The first client regenerates: the history it sends no longer matches what was stored.
    await h.ollama.chat({ model: MODEL, messages: [u1, { role: 'assistant', content: 'Something else.' }, { role: 'user', content: 'More?' }] });
    // And continues its real thread.
    await h.ollama.chat({ model: MODEL, messages: [u1, { role: 'assistant', content: a1 }, { role: 'user', content: 'More?' }] });
    const ids = await threadSessions(h);
    expect(ids).toHaveLength(3);
    const lengths = await Promise.all(ids.map(async (id) => (await storedMessages(h, id)).length));
    expect(lengths.sort()).toEqual([2, 4, 4]);
  });

  test('a thread idle past threads.retentionMs is not continued, and the sweep deletes it with its messages', async () => {
    let now = new Date('2026-05-01T10:00:00.000Z');
    const h = await parley({ now: () => now, config: { threads: { mode: 'thread', retentionMs: 60_000 } } });
    const u1: Message = { role: 'user', content: 'Remember the number 7.' };
    const a1 = (await h.ollama.chat({ model: MODEL, messages: [u1] })).message.content;
    const [old] = await threadSessions(h);
    now = new Date(now.getTime() + 61_000);
    await h.ollama.chat({ model: MODEL, messages: [u1, { role: 'assistant', content: a1 }, { role: 'user', content: 'Which number?' }] });
    const ids = await threadSessions(h);
    expect(ids).toHaveLength(2);
    now = new Date(now.getTime() + 30_000);
    expect(await h.app.context.threads!.sweep()).toBe(1);
    expect(await threadSessions(h)).toEqual(ids.filter((id) => id !== old));
    expect((await fetch(`${h.url}/api/sessions/${old}`)).status).toBe(404);
  });

  test('threads.mode off (the default) stores nothing for chats without a session id', async () => {
    const h = await startHarness({ database: await dialect.open() });
    cleanups.push(() => h.close());
    await h.ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'Hello' }] });
    const n = await h.app.database.db.selectFrom('messages').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow();
    expect(Number(n.n)).toBe(0);
    expect(h.app.context.threads).toBeUndefined();
  });
});
