/**
 * End to end (issue 6): the admin API. Every endpoint refuses callers without an admin credential
 * (401) and non-admin keys (403), works with PARLEY_ADMIN_TOKEN or an admin key, and leaves an
 * audit entry (who, what, when, status). Bad input is 400 naming the field and changes nothing.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from '../helpers/harness.js';
import { raw, type RawResponse } from './raw-http.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function start(): Promise<Harness> {
  h = await startHarness({ sim: { tokenIntervalMs: 5, replyTokens: 20 }, config: { admin: { token: ADMIN_TOKEN }, shutdown: { drainTimeoutMs: 500 } } });
  return h;
}

type Json = Record<string, any>;
const admin = (url: string, method: string, path: string, body?: unknown, token = ADMIN_TOKEN): Promise<RawResponse> =>
  raw(url, path, { method, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) });
const json = (r: RawResponse): Json => JSON.parse(r.text) as Json;

async function lastAudit(url: string): Promise<Json> {
  const r = await admin(url, 'GET', '/admin/audit?limit=1');
  // This GET's own entry is written after its list was read (just before its response goes out).
  return json(r).entries[0];
}

const ENDPOINTS: Array<{ method: string; path: string; route?: string; body?: unknown; status: number }> = [
  { method: 'GET', path: '/admin/queue', status: 200 },
  { method: 'POST', path: '/admin/queue/pause', status: 200 },
  { method: 'POST', path: '/admin/queue/resume', status: 200 },
  { method: 'POST', path: '/admin/queue/drain', status: 200 },
  { method: 'POST', path: '/admin/queue/clear', status: 200 },
  { method: 'DELETE', path: '/admin/queue/nope', route: '/admin/queue/:requestId', status: 404 },
  { method: 'GET', path: '/admin/upstreams', status: 200 },
  { method: 'GET', path: '/admin/models', status: 200 },
  { method: 'POST', path: '/admin/models/preload', body: { model: 'llama3.2' }, status: 200 },
  { method: 'POST', path: '/admin/models/unload', body: { model: 'llama3.2' }, status: 200 },
  { method: 'POST', path: '/admin/models/reload', body: { model: 'llama3.2' }, status: 200 },
  { method: 'GET', path: '/admin/sessions/s-1', route: '/admin/sessions/:id', status: 200 },
  { method: 'GET', path: '/admin/sessions?key=k', route: '/admin/sessions', status: 200 },
  { method: 'GET', path: '/admin/keys', status: 200 },
  { method: 'POST', path: '/admin/keys', body: { name: 'table', tier: 'free' }, status: 201 },
  { method: 'PATCH', path: '/admin/keys/unknown', route: '/admin/keys/:id', body: { tier: 'free' }, status: 404 },
  { method: 'DELETE', path: '/admin/keys/unknown', route: '/admin/keys/:id', status: 404 },
  { method: 'GET', path: '/admin/tiers', status: 200 },
  { method: 'GET', path: '/admin/config', status: 200 },
  { method: 'PATCH', path: '/admin/config', body: { 'queue.switchMaxWaitMs': 1000 }, status: 200 },
  { method: 'GET', path: '/admin/usage', status: 200 },
  { method: 'GET', path: '/admin/audit', status: 200 },
];

describe('admin API access and audit', () => {
  it('refuses every endpoint without credentials (401) and with a non-admin key (403), serves it with the admin token or an admin key, and audits each call', async () => {
    const { url, app } = await start();
    await raw(url, '/api/chat', { body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], session_id: 's-1', stream: false } });
    const user = await app.keys.create({ name: 'user', tier: 'free' });
    const adminKey = await app.keys.create({ name: 'ops', tier: 'enterprise', admin: true });
    for (const e of ENDPOINTS) {
      const route = e.route ?? e.path;
      const none = await raw(url, e.path, { method: e.method, ...(e.body === undefined ? {} : { body: e.body }) });
      expect(none.status, `${e.method} ${e.path} without credentials`).toBe(401);
      expect(json(none).error).toMatch(/^unauthorized: \/admin needs PARLEY_ADMIN_TOKEN or an admin key/);
      expect(await lastAudit(url)).toMatchObject({ actor: 'unauthenticated', action: `${e.method} ${route}`, status: 401 });
      const forbidden = await admin(url, e.method, e.path, e.body, user.key);
      expect(forbidden.status, `${e.method} ${e.path} with a user key`).toBe(403);
      expect(await lastAudit(url)).toMatchObject({ actor: 'forbidden', status: 403 });
      const ok = await admin(url, e.method, e.path, e.body);
      expect(ok.status, `${e.method} ${e.path}: ${ok.text}`).toBe(e.status);
      const entry = await lastAudit(url);
      expect(entry).toMatchObject({ actor: 'admin-token', action: `${e.method} ${route}`, status: e.status });
      expect(Date.now() - Date.parse(entry.at)).toBeLessThan(10_000);
    }
    await admin(url, 'POST', '/admin/queue/resume');
    const viaKey = await admin(url, 'GET', '/admin/keys', undefined, adminKey.key);
    expect(viaKey.status).toBe(200);
    expect(await lastAudit(url)).toMatchObject({ actor: `key:${adminKey.id}`, action: 'GET /admin/keys' });
    // Keys appear neither in the audit log nor in the logs.
    const audit = (await admin(url, 'GET', '/admin/audit?limit=1000')).text;
    const logs = JSON.stringify(h!.logs);
    for (const k of [user.key, adminKey.key, ADMIN_TOKEN]) {
      expect(audit.includes(k)).toBe(false);
      expect(logs.includes(k)).toBe(false);
    }
  }, 30_000);
});

describe('admin API behaviour', () => {
  it('creates a key once, lists it without the secret, changes its tier and revokes it; bad input is 400 naming the field and changes nothing', async () => {
    const { url } = await start();
    const created = await admin(url, 'POST', '/admin/keys', { name: 'gina', tier: 'premium' });
    expect(created.status).toBe(201);
    const key = json(created);
    expect(key.key).toMatch(/^pk_[0-9a-f]{8}_/);
    expect(key).toMatchObject({ name: 'gina', tier: 'premium', admin: false, revoked_at: null, prefix: key.key.slice(0, 11) });
    const listed = json(await admin(url, 'GET', '/admin/keys')).keys;
    expect(listed).toHaveLength(1);
    expect(JSON.stringify(listed).includes(key.key)).toBe(false);

    for (const [body, field] of [[{ name: 'x', tier: 'gold' }, 'tier'], [{ name: '' }, 'name'], [{ name: 'x', admin: 'yes' }, 'admin']] as const) {
      const bad = await admin(url, 'POST', '/admin/keys', body);
      expect(bad.status).toBe(400);
      expect(json(bad).error).toMatch(new RegExp(`^invalid ${field}:`));
    }
    expect(json(await admin(url, 'PATCH', `/admin/keys/${key.id}`, { tier: 'platinum' })).error).toMatch(/^invalid tier: must be one of free, premium, enterprise/);
    expect(json(await admin(url, 'GET', '/admin/keys')).keys).toMatchObject([{ tier: 'premium' }]);

    expect(json(await admin(url, 'PATCH', `/admin/keys/${key.id}`, { tier: 'enterprise' }))).toMatchObject({ tier: 'enterprise' });
    expect(await lastAudit(url)).toMatchObject({ action: 'PATCH /admin/keys/:id', target: key.id, details: { tier: 'enterprise' } });
    const chat = { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false };
    expect((await raw(url, '/api/chat', { body: chat, headers: { authorization: `Bearer ${key.key}` } })).status).toBe(200);
    expect(json(await admin(url, 'DELETE', `/admin/keys/${key.id}`)).revoked_at).not.toBeNull();
    expect((await raw(url, '/api/chat', { body: chat, headers: { authorization: `Bearer ${key.key}` } })).status).toBe(401);
  });

  it('updates runtime settings at once, all or nothing, and rejects a negative budget or unknown setting with 400 naming the field', async () => {
    const { url, app } = await start();
    const before = json(await admin(url, 'GET', '/admin/config')).settings;
    for (const [body, field] of [
      [{ 'users.tiers.free.tokensPerDay': -5 }, 'users.tiers.free.tokensPerDay'],
      [{ 'queue.slotsPerUpstream': 2, 'users.tiers.premium.weight': 0 }, 'users.tiers.premium.weight'],
      [{ 'queue.maxDepth': 3 }, 'queue.maxDepth'],
      [{ 'users.defaultTier': 'gold' }, 'users.defaultTier'],
    ] as const) {
      const bad = await admin(url, 'PATCH', '/admin/config', body);
      expect(bad.status).toBe(400);
      expect(json(bad).error).toMatch(new RegExp(`^invalid setting ${field.replace(/\./g, '\\.')}:`));
    }
    expect(json(await admin(url, 'GET', '/admin/config')).settings).toEqual(before);
    expect(app.pool.entries[0]!.queue.snapshot().slots).toBe(1);

    const ok = await admin(url, 'PATCH', '/admin/config', { 'queue.slotsPerUpstream': 3, 'users.tiers.free.tokensPerDay': 500 });
    expect(ok.status).toBe(200);
    expect(json(ok).changed).toEqual([
      { path: 'queue.slotsPerUpstream', from: 1, to: 3 },
      { path: 'users.tiers.free.tokensPerDay', from: 10_000, to: 500 },
    ]);
    expect(app.pool.entries[0]!.queue.snapshot().slots).toBe(3);
    expect(app.live.current.users.tiers.free!.tokensPerDay).toBe(500);
    expect(await lastAudit(url)).toMatchObject({ action: 'PATCH /admin/config', status: 200, details: { changed: json(ok).changed } });
  });

  it('shows waiting requests with key, model, position and wait; cancels one; drains, pauses, resumes and clears', async () => {
    const { url, app } = await start();
    const { key } = await app.keys.create({ name: 'hal', tier: 'enterprise' });
    const chat = (id: string) => raw(url, '/api/chat', { headers: { authorization: `Bearer ${key}`, 'x-request-id': id }, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false } });
    await admin(url, 'POST', '/admin/queue/pause');
    const replies = ['q1', 'q2', 'q3'].map(chat);
    const queue = app.pool.entries[0]!.queue;
    while (queue.depth < 3) await new Promise((r) => setTimeout(r, 5));
    const view = json(await admin(url, 'GET', '/admin/queue')).upstreams[0];
    expect(view).toMatchObject({ paused: true, depth: 3 });
    expect(view.waiting.map((w: Json) => [w.request_id, w.position, w.model])).toEqual([['q1', 1, 'llama3.2'], ['q2', 2, 'llama3.2'], ['q3', 3, 'llama3.2']]);
    expect(view.waiting[0].key).toMatch(/^pk_[0-9a-f]{8} \(hal\)$/);
    expect(view.waiting[0].waiting_ms).toBeGreaterThanOrEqual(0);

    expect(json(await admin(url, 'DELETE', '/admin/queue/q2'))).toEqual({ cancelled: 'q2' });
    const q2 = await replies[1]!;
    expect(q2.status).toBe(503);
    expect(json(q2).error).toMatch(/removed from the queue by an operator/);
    await admin(url, 'POST', '/admin/queue/drain');
    const refused = await chat('q4');
    expect(refused.status).toBe(503);
    expect(json(refused).error).toMatch(/being drained/);
    expect(json(await admin(url, 'POST', '/admin/queue/clear')).cleared).toBe(2);
    expect((await replies[0]!).status).toBe(503);
    await admin(url, 'POST', '/admin/queue/resume');
    expect((await chat('q5')).status).toBe(200);
  });

  it('preloads, unloads and reloads a model on the upstream, and reports usage per key, model and day as JSON and CSV', async () => {
    const { url, app, sim } = await start();
    const [upstream] = json(await admin(url, 'GET', '/admin/upstreams')).upstreams;
    expect(upstream).toMatchObject({ url: sim.url, reachable: true, serving: true, breaker: { state: 'closed' } });
    expect(json(await admin(url, 'POST', '/admin/models/preload', { model: 'qwen3' })).results).toEqual([{ upstream: sim.url, ok: true, status: 200 }]);
    expect(sim.loadedModels()).toContain('qwen3:latest');
    const models = json(await admin(url, 'GET', '/admin/models')).upstreams[0];
    expect(models.loaded.map((m: Json) => m.name)).toContain('qwen3:latest');
    await admin(url, 'POST', '/admin/models/unload', { model: 'qwen3' });
    await sim.waitFor(() => !sim.loadedModels().includes('qwen3:latest'), 2_000).catch(() => undefined);
    expect(sim.loadedModels()).not.toContain('qwen3:latest');
    expect((await admin(url, 'POST', '/admin/models/reload', { model: 'qwen3' })).status).toBe(200);
    expect(sim.loadedModels()).toContain('qwen3:latest');
    expect(json(await admin(url, 'POST', '/admin/models/preload', {})).error).toBe('invalid model: must be a non-empty string');
    expect((await admin(url, 'POST', '/admin/models/preload', { model: 'nope' })).status).toBe(404);

    const { key, id } = await app.keys.create({ name: 'ivy', tier: 'free' });
    const r = json(await raw(url, '/api/chat', { headers: { authorization: `Bearer ${key}` }, body: { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, session_id: 'ivy-1' } }));
    const usage = json(await admin(url, 'GET', `/admin/usage?key=${id}`)).usage;
    expect(usage).toEqual([{ day: new Date().toISOString().slice(0, 10), key_id: id, model: 'llama3.2:latest', requests: 1, prompt_tokens: r.prompt_eval_count, reply_tokens: r.eval_count, errors: 0, duration_ms: expect.any(Number) }]);
    const csv = await admin(url, 'GET', `/admin/usage?key=${id}&format=csv`);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.text.split('\n')[0]).toBe('day,key_id,model,requests,prompt_tokens,reply_tokens,errors,duration_ms');
    expect(csv.text.split('\n')[1]).toMatch(new RegExp(`^\\d{4}-\\d{2}-\\d{2},${id},llama3.2:latest,1,${r.prompt_eval_count},${r.eval_count},0,\\d+$`));
    expect(json(await admin(url, 'GET', '/admin/usage?from=yesterday')).error).toBe('invalid from: must be a day YYYY-MM-DD');

    await new Promise((res) => setTimeout(res, 50));
    expect(json(await admin(url, 'GET', `/admin/sessions?key=${id}`)).sessions.map((s: Json) => s.sessionId)).toEqual(['ivy-1']);
    const deep = json(await admin(url, 'GET', '/admin/sessions/ivy-1'));
    expect(deep).toMatchObject({ owner_key_id: id, totals: { messages: 2, prompt_tokens: r.prompt_eval_count, reply_tokens: r.eval_count } });
    expect(deep.messages.map((m: Json) => m.role)).toEqual(['user', 'assistant']);
    expect((await admin(url, 'GET', '/admin/sessions/unknown-session')).status).toBe(404);
  });
});
