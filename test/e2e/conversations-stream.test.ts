import { afterEach, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { readSse, tokenText, type SseEvent } from '../helpers/sse.js';

/**
 * Conversation replies as streams end to end (real HTTP and WebSocket against Parley, Parley
 * against the simulator, SQLite): SSE events, resume with Last-Event-ID mid-reply and after the
 * reply finished, the grace period, cancel, WebSocket send/stream/cancel, queue steps, degraded
 * warnings, and one conversation = one session across /api/chat and /api/conversations.
 */

const MODEL = 'llama3.2';
type Json = Record<string, any>;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function parley(opts: HarnessOptions = {}): Promise<Harness> {
  const h = await startHarness(opts);
  cleanups.push(() => h.close());
  return h;
}

async function create(h: Harness, body: Json = { model: MODEL }): Promise<string> {
  const res = await fetch(`${h.url}/api/conversations`, { method: 'POST', body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  return ((await res.json()) as Json).id as string;
}

function post(h: Harness, id: string, body: Json, signal?: AbortSignal): Promise<Response> {
  return fetch(`${h.url}/api/conversations/${id}/messages`, { method: 'POST', body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

async function messages(h: Harness, id: string): Promise<Json[]> {
  const res = await fetch(`${h.url}/api/conversations/${id}/messages?limit=500`);
  return ((await res.json()) as Json).messages as Json[];
}

function resume(h: Harness, id: string, lastEventId: string): Promise<Response> {
  return fetch(`${h.url}/api/conversations/${id}/events`, { headers: { 'Last-Event-ID': lastEventId } });
}

/** Seqs of the events, which must be 1..n for one reply with nothing missing or repeated. */
function seqs(events: SseEvent[]): number[] {
  return events.map((e) => Number(e.id.split(':')[1]));
}

const tokenCount = (events: SseEvent[]) => events.filter((e) => e.event === 'token').length;

describe('conversation replies over SSE', () => {
  test('a client that drops mid-reply reconnects with Last-Event-ID and gets exactly the rest, while the reply kept generating', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 15, replyTokens: 40 } });
    const id = await create(h);
    const first = await readSse(await post(h, id, { content: 'Tell me a long story.' }), (_e, all) => tokenCount(all) === 5);
    const last = first.at(-1)!;
    expect(last.event).toBe('token');
    await new Promise((r) => setTimeout(r, 150));
    const res = await resume(h, id, last.id);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const rest = await readSse(res);
    const all = [...first, ...rest];
    expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
    expect(all.at(-1)?.event).toBe('done');
    expect(tokenCount(all)).toBe(40);
    const stored = await messages(h, id);
    expect(stored[1]).toMatchObject({ role: 'assistant', status: 'complete', content: tokenText(all) });
    // The model was never interrupted.
    const upstream = h.sim.requests.filter((r) => r.path === '/api/chat');
    expect(upstream).toHaveLength(1);
    expect(upstream[0]?.aborted).toBe(false);
  });

  test('reconnecting after the reply finished replays the missed events, the last of them done, without duplicates', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 10, replyTokens: 30 } });
    const id = await create(h);
    const first = await readSse(await post(h, id, { content: 'Count to thirty.' }), (_e, all) => tokenCount(all) === 3);
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat' && r.finishedAt !== undefined));
    await expect.poll(async () => ((await (await fetch(`${h.url}/api/conversations/${id}`)).json()) as Json).current_reply_id).toBeNull();
    const rest = await readSse(await resume(h, id, first.at(-1)!.id));
    const all = [...first, ...rest];
    expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
    expect(rest.at(-1)?.event).toBe('done');
    expect(tokenText(all)).toBe((await messages(h, id))[1]?.content);
    // The query parameter works as well as the header (EventSource cannot set headers on a new URL).
    const again = await fetch(`${h.url}/api/conversations/${id}/events?last_event_id=${encodeURIComponent(all.at(-2)!.id)}`);
    expect((await readSse(again)).map((e) => e.event)).toEqual(['done']);
  });

  test('nobody reconnects within the grace period: the reply is cancelled upstream and stored incomplete', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 20, replyTokens: 500 }, config: { conversations: { reconnectGraceMs: 300 } } });
    const id = await create(h);
    const first = await readSse(await post(h, id, { content: 'Go on forever.' }), (_e, all) => tokenCount(all) === 3);
    const droppedAt = Date.now();
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat' && r.aborted), 5_000);
    const abortedAt = h.sim.requests.find((r) => r.path === '/api/chat')!.abortedAt!;
    expect(abortedAt - droppedAt).toBeGreaterThanOrEqual(250);
    await expect.poll(async () => (await messages(h, id))[1]?.status).toBe('incomplete');
    const rest = await readSse(await resume(h, id, first.at(-1)!.id));
    const all = [...first, ...rest];
    expect(seqs(all)).toEqual(all.map((_, i) => i + 1));
    // Tokens kept coming during the grace period, then the reply ended with the cancel error.
    expect(tokenCount(rest)).toBeGreaterThan(3);
    expect(rest.at(-1)).toMatchObject({ event: 'error', data: { code: 'PARLEY_ERR_CONVERSATION_REPLY_CANCELLED', incomplete: true } });
    expect((await messages(h, id))[1]?.content).toBe(tokenText(all));
  });

  test('POST …/cancel stops a running reply; a second message while one runs is 409', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 20, replyTokens: 500 } });
    const id = await create(h);
    const res = await post(h, id, { content: 'Long one, please.' });
    const reading = readSse(res);
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat' && r.firstByteAt !== undefined));
    const busy = await post(h, id, { content: 'Another?' });
    expect(busy.status).toBe(409);
    const cancel = await fetch(`${h.url}/api/conversations/${id}/cancel`, { method: 'POST' });
    expect(cancel.status).toBe(202);
    const events = await reading;
    expect(events.at(-1)).toMatchObject({ event: 'error', data: { code: 'PARLEY_ERR_CONVERSATION_REPLY_CANCELLED' } });
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat' && r.aborted));
    expect((await messages(h, id))[1]).toMatchObject({ status: 'incomplete', content: tokenText(events) });
    expect((await fetch(`${h.url}/api/conversations/${id}/cancel`, { method: 'POST' })).status).toBe(404);
  });

  test('queue positions arrive as step events while the reply waits for a slot', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 10, replyTokens: 20 } });
    const blocker = new AbortController();
    const chat = fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hold the slot' }] }), signal: blocker.signal }).then((r) => r.text()).catch(() => '');
    await h.sim.waitFor((rs) => rs.some((r) => r.path === '/api/chat'));
    const id = await create(h);
    const events = await readSse(await post(h, id, { content: 'Me next.' }));
    blocker.abort();
    await chat;
    const queue = events.filter((e) => e.data.stage === 'queue').map((e) => e.data.position);
    expect(queue[0]).toBe(1);
    expect(queue.at(-1)).toBe(0);
    expect(events.at(-1)?.event).toBe('done');
  });

  test('a degraded answer comes with a warning event, and nothing of it is stored', async () => {
    const h = await parley({ sim: { faults: { refuseConnections: true } }, config: { degraded: { mode: 'static' }, resilience: { maxRetries: 0 } } });
    const id = await create(h);
    const events = await readSse(await post(h, id, { content: 'Hello?' }));
    expect(events.find((e) => e.event === 'warning')?.data).toMatchObject({ kind: 'degraded', mode: 'static' });
    expect(tokenText(events)).toContain("I'm sorry, the language model is unavailable right now.");
    expect(events.at(-1)).toMatchObject({ event: 'done', data: { degraded: 'static' } });
    expect(await messages(h, id)).toEqual([]);
  });

  test('stream:false answers the whole reply as JSON', async () => {
    const h = await parley();
    const id = await create(h);
    const res = await post(h, id, { content: 'Short answer please.', stream: false });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Json;
    expect(body).toMatchObject({ message: { role: 'assistant', content: (await messages(h, id))[1]?.content }, done_reason: 'stop', completion_tokens: 8, warnings: [] });
  });

  test('a session started on /api/chat is listed and continued here, and a conversation made here is continued on /api/chat', async () => {
    const h = await parley();
    const sid = 'started-on-chat';
    const u1 = { role: 'user', content: 'My name is Ada.' };
    const r1 = (await (await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: sid, stream: false, messages: [u1] }) })).json()) as Json;
    const list = (await (await fetch(`${h.url}/api/conversations`)).json()) as Json;
    expect(list.conversations).toEqual([expect.objectContaining({ id: sid, title: 'My name is Ada.', message_count: 2, model: MODEL })]);
    const events = await readSse(await post(h, sid, { content: 'What is my name?' }));
    const a2 = tokenText(events);
    const u3 = { role: 'user', content: 'Thanks.' };
    await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: sid, stream: false, messages: [u3] }) });
    const sent = h.sim.requests.filter((r) => r.path === '/api/chat').map((r) => (r.body as Json).messages);
    expect(sent.at(-1)).toEqual([u1, { role: 'assistant', content: r1.message.content }, { role: 'user', content: 'What is my name?' }, { role: 'assistant', content: a2 }, u3]);

    const id = await create(h);
    await readSse(await post(h, id, { content: 'Remember: blue.' }));
    const res = await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: id, stream: false, messages: [{ role: 'user', content: 'Which colour?' }] }) });
    expect(res.status).toBe(200);
    expect(((h.sim.requests.at(-1)?.body as Json).messages as Json[]).map((m) => m.content)[0]).toBe('Remember: blue.');
    expect((await messages(h, id)).map((m) => m.role)).toEqual(['user', 'assistant', 'user', 'assistant']);
  });
});

/** A WebSocket client that collects every frame. */
async function connect(url: string): Promise<{ ws: WebSocket; frames: Json[]; next: (pred: (f: Json) => boolean) => Promise<Json> }> {
  const ws = new WebSocket(url);
  const frames: Json[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (data) => {
    frames.push(JSON.parse(String(data)) as Json);
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  cleanups.push(async () => ws.close());
  const next = async (pred: (f: Json) => boolean): Promise<Json> => {
    for (;;) {
      const hit = frames.find(pred);
      if (hit) return hit;
      await new Promise<void>((resolve, reject) => {
        waiters.push(resolve);
        setTimeout(() => reject(new Error(`no matching frame; got ${JSON.stringify(frames.slice(-3))}`)), 5_000).unref();
      });
    }
  };
  return { ws, frames, next };
}

function wsUrl(h: Harness, id: string): string {
  return `${h.url.replace(/^http/, 'ws')}/api/conversations/${id}/ws`;
}

/** The HTTP status a WebSocket upgrade was refused with. */
function refusedWith(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => reject(new Error('upgrade accepted')));
    ws.on('error', () => undefined);
  });
}

describe('conversation replies over WebSocket', () => {
  test('send streams the same events; cancel aborts the reply upstream and it is stored incomplete', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 15, replyTokens: 12 } });
    const id = await create(h);
    const { ws, frames, next } = await connect(wsUrl(h, id));
    ws.send(JSON.stringify({ type: 'send', content: 'Hi there!' }));
    const done = await next((f) => f.type === 'done');
    const first = frames.filter((f) => f.id?.startsWith(done.id.split(':')[0]));
    expect(first[0]).toMatchObject({ type: 'step', data: { stage: 'accepted', conversation_id: id } });
    expect(first.map((f) => Number(f.id.split(':')[1]))).toEqual(first.map((_, i) => i + 1));
    expect(first.filter((f) => f.type === 'token').map((f) => f.data.content).join('')).toBe((await messages(h, id))[1]?.content);
    expect(done.data).toMatchObject({ completion_tokens: 12 });

    h.sim.setOptions({ replyTokens: 1000 });
    frames.length = 0;
    ws.send(JSON.stringify({ type: 'send', content: 'Now a long one.' }));
    await next((f) => f.type === 'token');
    ws.send(JSON.stringify({ type: 'send', content: 'Interrupting!' }));
    expect((await next((f) => f.type === 'rejected')).data).toMatchObject({ code: 'PARLEY_ERR_CONVERSATION_BUSY', status: 409 });
    ws.send(JSON.stringify({ type: 'cancel' }));
    expect((await next((f) => f.type === 'error')).data).toMatchObject({ code: 'PARLEY_ERR_CONVERSATION_REPLY_CANCELLED', incomplete: true });
    await h.sim.waitFor((rs) => rs.filter((r) => r.path === '/api/chat')[1]?.aborted === true);
    const stored = await messages(h, id);
    expect(stored[3]).toMatchObject({ role: 'assistant', status: 'incomplete', content: frames.filter((f) => f.type === 'token').map((f) => f.data.content).join('') });

    ws.send('not json');
    expect((await next((f) => f.type === 'rejected' && f.data.code === 'PARLEY_ERR_REQUEST_INVALID')).data.status).toBe(400);
    ws.send(JSON.stringify({ type: 'send', content: 'x'.repeat(600 * 1024) }));
    expect((await next((f) => f.type === 'rejected' && f.data.status === 413)).data.message).toContain('the limit is 524288 bytes');
  });

  test('a reconnecting socket resumes from its last event id; unknown and deleted conversations are refused before the upgrade', async () => {
    const h = await parley({ sim: { tokenIntervalMs: 15, replyTokens: 30 } });
    const id = await create(h);
    const a = await connect(wsUrl(h, id));
    a.ws.send(JSON.stringify({ type: 'send', content: 'Stream me.' }));
    await a.next((f) => f.type === 'token' && Number(f.id.split(':')[1]) >= 6);
    a.ws.terminate();
    const seen = a.frames.filter((f) => f.id);
    const b = await connect(wsUrl(h, id));
    b.ws.send(JSON.stringify({ type: 'resume', last_event_id: seen.at(-1)!.id }));
    await b.next((f) => f.type === 'done');
    const all = [...seen, ...b.frames.filter((f) => f.id)];
    expect(all.map((f) => Number(f.id.split(':')[1]))).toEqual(all.map((_, i) => i + 1));
    expect(h.sim.requests.find((r) => r.path === '/api/chat')?.aborted).toBe(false);

    expect(await refusedWith(wsUrl(h, 'no-such-conversation'))).toBe(404);
    await fetch(`${h.url}/api/conversations/${id}`, { method: 'DELETE' });
    expect(await refusedWith(wsUrl(h, id))).toBe(410);
  });

  test('the WebSocket endpoint can be turned off', async () => {
    const h = await parley({ config: { conversations: { websocket: 'off' } } });
    const id = await create(h);
    expect(await refusedWith(wsUrl(h, id))).toBe(404);
    const res = await fetch(`${h.url}/api/conversations/${id}/ws`);
    expect(((await res.json()) as Json).error).toContain('turned off');
  });
});
