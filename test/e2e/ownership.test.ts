/**
 * Ownership end to end (docs/api.md "Ownership"): with API keys, sessions, conversations and
 * threads belong to the key that created them. Another key gets exactly what an unknown id gets
 * (404) on every route, /api/chat and the WebSocket included; admin credentials see everything;
 * without keys nothing changes. Real HTTP against Parley in front of the simulator.
 */
import { afterEach, describe, expect, test } from 'vitest';
import WebSocket from 'ws';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { readSse, tokenText } from '../helpers/sse.js';
import { raw, type RawResponse } from './raw-http.js';

type Json = Record<string, unknown>;
const MODEL = 'llama3.2';
const ADMIN_TOKEN = 'admin-secret-for-tests';
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const json = (r: RawResponse) => JSON.parse(r.text) as Json;
const chat = (sessionId: string | undefined, content: string) => ({ model: MODEL, ...(sessionId ? { session_id: sessionId } : {}), messages: [{ role: 'user', content }], stream: false, options: { num_predict: 6 } });
const simChats = (h: Harness) => h.sim.requests.filter((r) => r.path === '/api/chat').length;

/** The HTTP status a WebSocket upgrade was refused with. */
function refusedWith(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.on('open', () => {
      ws.close();
      reject(new Error('upgrade accepted'));
    });
    ws.on('error', () => undefined);
  });
}

describe.each(dialects)('ownership on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function parley(opts: HarnessOptions = {}): Promise<{ h: Harness; alice: { id: string; key: string }; bob: { id: string; key: string }; adminKey: string }> {
    const h = await startHarness({ database: await dialect.open(), ...opts, config: { auth: { mode: 'required' }, admin: { token: ADMIN_TOKEN }, shutdown: { drainTimeoutMs: 500 }, ...opts.config } });
    cleanups.push(() => h.close());
    const alice = await h.app.keys.create({ name: 'alice', tier: 'premium' });
    const bob = await h.app.keys.create({ name: 'bob', tier: 'premium' });
    const admin = await h.app.keys.create({ name: 'ops', tier: 'premium', admin: true });
    return { h, alice: { id: alice.id, key: alice.key }, bob: { id: bob.id, key: bob.key }, adminKey: admin.key };
  }

  test('a session started on /api/chat is its key\'s: another key gets the unknown-id 404 on GET and on /api/chat, nothing is sent or stored; admins see it', async () => {
    const { h, alice, bob, adminKey } = await parley();
    const first = await raw(h.url, '/api/chat', { body: chat('alice-trip', 'I am Alice, planning Porto.'), headers: bearer(alice.key) });
    expect(first.status).toBe(200);
    expect((await raw(h.url, '/api/sessions/alice-trip', { headers: bearer(alice.key) })).status).toBe(200);

    const unknown = await raw(h.url, '/api/sessions/nobody-has-this', { headers: bearer(bob.key) });
    const peek = await raw(h.url, '/api/sessions/alice-trip', { headers: bearer(bob.key) });
    expect(peek.status).toBe(404);
    expect(json(peek)).toEqual({ error: "session 'alice-trip' not found" });
    expect(json(unknown)).toEqual({ error: "session 'nobody-has-this' not found" });

    const before = simChats(h);
    const hijack = await raw(h.url, '/api/chat', { body: chat('alice-trip', 'What did Alice say?'), headers: bearer(bob.key) });
    expect(hijack.status).toBe(404);
    expect(json(hijack)).toEqual({ error: "session 'alice-trip' not found" });
    const viaHeader = await raw(h.url, '/api/chat', { body: chat(undefined, 'What did Alice say?'), headers: { ...bearer(bob.key), 'x-session-id': 'alice-trip' } });
    expect(viaHeader.status).toBe(404);
    const create = await raw(h.url, '/api/sessions', { body: { session_id: 'alice-trip' }, headers: bearer(bob.key) });
    expect(create.status).toBe(404);
    expect(simChats(h)).toBe(before);

    const mine = json(await raw(h.url, '/api/sessions/alice-trip', { headers: bearer(alice.key) }));
    expect(mine.message_count).toBe(2);
    // Admin credentials see every session: an admin key on /api, the admin token on /admin.
    expect((await raw(h.url, '/api/sessions/alice-trip', { headers: bearer(adminKey) })).status).toBe(200);
    const admin = json(await raw(h.url, '/admin/sessions/alice-trip', { headers: bearer(ADMIN_TOKEN) }));
    expect(admin.owner_key_id).toBe(alice.id);
    const listed = json(await raw(h.url, `/admin/sessions?key=${alice.id}`, { headers: bearer(ADMIN_TOKEN) }));
    expect((listed.sessions as Json[]).map((s) => s.sessionId)).toEqual(['alice-trip']);

    // A new id is claimed by the first key that uses it; Bob's own sessions work as before.
    expect((await raw(h.url, '/api/chat', { body: chat('bob-notes', 'Hi'), headers: bearer(bob.key) })).status).toBe(200);
    expect((await raw(h.url, '/api/sessions/bob-notes', { headers: bearer(alice.key) })).status).toBe(404);
    expect((await raw(h.url, '/api/sessions/bob-notes', { headers: bearer(bob.key) })).status).toBe(200);
  });

  test('every /api/conversations/:id route and the WebSocket answer another key 404; lists show only the caller\'s own', async () => {
    const { h, alice, bob, adminKey } = await parley();
    const created = await raw(h.url, '/api/conversations', { body: { model: MODEL, title: 'Alice in Porto' }, headers: bearer(alice.key) });
    expect(created.status).toBe(201);
    const id = json(created).id as string;
    await raw(h.url, '/api/conversations', { body: { model: MODEL, title: 'Bob in Braga' }, headers: bearer(bob.key) });

    const notFound = { error: `conversation '${id}' not found` };
    const routes: Array<[string, string, unknown?]> = [
      ['GET', `/api/conversations/${id}`],
      ['PATCH', `/api/conversations/${id}`, { title: 'mine now' }],
      ['GET', `/api/conversations/${id}/messages`],
      ['POST', `/api/conversations/${id}/messages`, { content: 'hello?', stream: false }],
      ['GET', `/api/conversations/${id}/events`],
      ['POST', `/api/conversations/${id}/cancel`],
      ['GET', `/api/conversations/${id}/export?format=markdown`],
      ['POST', `/api/conversations/${id}/restore`],
      ['DELETE', `/api/conversations/${id}`],
    ];
    for (const [method, path, body] of routes) {
      const res = await raw(h.url, path, { method, body, headers: bearer(bob.key) });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(json(res), `${method} ${path}`).toEqual(notFound);
    }
    const wsUrl = `${h.url.replace(/^http/, 'ws')}/api/conversations/${id}/ws`;
    expect(await refusedWith(wsUrl, bearer(bob.key))).toBe(404);
    expect(simChats(h)).toBe(0);

    const titles = async (key: string) => ((json(await raw(h.url, '/api/conversations', { headers: bearer(key) })).conversations as Json[]).map((c) => c.title));
    expect(await titles(alice.key)).toEqual(['Alice in Porto']);
    expect(await titles(bob.key)).toEqual(['Bob in Braga']);
    // Alice's conversation is untouched and hers to use; an admin key may open it.
    const got = json(await raw(h.url, `/api/conversations/${id}`, { headers: bearer(alice.key) }));
    expect(got).toMatchObject({ title: 'Alice in Porto', status: 'active', message_count: 0 });
    expect((await raw(h.url, `/api/conversations/${id}`, { headers: bearer(adminKey) })).status).toBe(200);
  });

  test('conversation replies run as the calling key: usage is recorded for it and its budget applies', async () => {
    const { h, alice } = await parley({ config: { users: { tiers: { premium: { tokensPerDay: null }, tiny: { tokensPerDay: 300 } }, defaultTier: 'premium' } } });
    const id = json(await raw(h.url, '/api/conversations', { body: { model: MODEL }, headers: bearer(alice.key) })).id as string;
    const res = await fetch(`${h.url}/api/conversations/${id}/messages`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(alice.key) }, body: JSON.stringify({ content: 'Hello from Alice', options: { num_predict: 8 } }) });
    expect(res.status).toBe(200);
    const events = await readSse(res);
    expect(events.at(-1)?.event).toBe('done');
    expect(tokenText(events).length).toBeGreaterThan(0);
    const usage = json(await raw(h.url, `/admin/usage?key=${alice.id}`, { headers: bearer(ADMIN_TOKEN) }));
    expect(usage.usage).toEqual([expect.objectContaining({ key_id: alice.id, model: 'llama3.2:latest', requests: 1, reply_tokens: 8 })]);
    expect(JSON.stringify(json(await raw(h.url, '/admin/usage', { headers: bearer(ADMIN_TOKEN) })).usage)).not.toContain('anonymous');

    // The same key on a tier whose daily budget the reply reservation does not fit: refused as that key.
    await h.app.keys.setTier(alice.id, 'tiny');
    const refused = await raw(h.url, `/api/conversations/${id}/messages`, { body: { content: 'Once more', stream: false, options: { num_predict: 400 } }, headers: bearer(alice.key) });
    expect(refused.status).toBe(429);
    expect(json(refused).error).toMatch(/^token budget exceeded: .* \(tier tiny\)/);
  });

  test('threads are keyed by the API key: two keys behind one address and User-Agent get separate threads, one key keeps its thread across clients', async () => {
    const { h, alice, bob } = await parley({ config: { threads: { mode: 'thread' } } });
    const ua = { 'user-agent': 'ollama-js/0.5 (shared office proxy)' };
    const turn1 = [{ role: 'user', content: 'Shared opening line' }];
    const send = (key: string, messages: unknown[], headers: Record<string, string> = ua) => raw(h.url, '/api/chat', { body: { model: MODEL, messages, stream: false, options: { num_predict: 5 } }, headers: { ...bearer(key), ...headers } });
    const a1 = await send(alice.key, turn1);
    const b1 = await send(bob.key, turn1);
    const aliceThread = a1.headers['x-session-id'] as string;
    const bobThread = b1.headers['x-session-id'] as string;
    expect(aliceThread).toMatch(/^thread-/);
    expect(bobThread).toMatch(/^thread-/);
    expect(bobThread).not.toBe(aliceThread);
    // Alice continues from another client (another User-Agent): same key, same thread.
    const a2 = await send(alice.key, [...turn1, { role: 'assistant', content: (json(a1).message as Json).content }, { role: 'user', content: 'Second' }], { 'user-agent': 'curl/8' });
    expect(a2.headers['x-session-id']).toBe(aliceThread);
    expect(json(await raw(h.url, `/api/sessions/${aliceThread}`, { headers: bearer(alice.key) })).message_count).toBe(4);
    expect((await raw(h.url, `/api/sessions/${aliceThread}`, { headers: bearer(bob.key) })).status).toBe(404);
  });

  test('a session created without a key (before keys existed) is not any key\'s: keys get 404, the admin token sees it', async () => {
    const { h, alice } = await parley({ config: { auth: { mode: 'auto' } } });
    // Keys exist now, so "auto" requires one; the session comes from an earlier anonymous time.
    await h.app.sessions.create('from-before', MODEL);
    expect((await raw(h.url, '/api/sessions/from-before', { headers: bearer(alice.key) })).status).toBe(404);
    expect((await raw(h.url, '/api/chat', { body: chat('from-before', 'mine?'), headers: bearer(alice.key) })).status).toBe(404);
    expect((await raw(h.url, '/admin/sessions/from-before', { headers: bearer(ADMIN_TOKEN) })).status).toBe(200);
  });

  test('without auth (auth off) nothing changes: every caller sees every session and conversation', async () => {
    const { h, alice, bob } = await parley({ config: { auth: { mode: 'off' } } });
    expect((await raw(h.url, '/api/chat', { body: chat('open-door', 'Hi'), headers: bearer(alice.key) })).status).toBe(200);
    expect((await raw(h.url, '/api/sessions/open-door', { headers: bearer(bob.key) })).status).toBe(200);
    expect((await raw(h.url, '/api/chat', { body: chat('open-door', 'Hi again') })).status).toBe(200);
    const id = json(await raw(h.url, '/api/conversations', { body: { model: MODEL } })).id as string;
    expect((await raw(h.url, `/api/conversations/${id}`, { headers: bearer(bob.key) })).status).toBe(200);
    expect((json(await raw(h.url, '/api/conversations')).conversations as Json[]).length).toBe(2);
  });
});
