/**
 * A session's state across the APIs, end to end: a soft-deleted conversation is 410 on /api/chat
 * and GET /api/sessions/:id too (nothing stored, nothing sent upstream) until it is restored; and
 * /admin/sessions/:id shows the same context details as GET /api/sessions/:id.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';
import { raw, type RawResponse } from './raw-http.js';

type Json = Record<string, unknown>;
const MODEL = 'llama3.2';
const ADMIN_TOKEN = 'admin-token-for-session-state';
const json = (r: RawResponse) => JSON.parse(r.text) as Json;
const simChats = (h: Harness) => h.sim.requests.filter((r) => r.path === '/api/chat').length;

describe.each(dialects)('session state on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function parley(opts: HarnessOptions = {}): Promise<Harness> {
    const h = await startHarness({ database: await dialect.open(), ...opts, config: { admin: { token: ADMIN_TOKEN }, ...opts.config } });
    cleanups.push(() => h.close());
    return h;
  }

  test('a deleted conversation answers 410 on /api/chat and GET /api/sessions/:id, storing and sending nothing, until restored', async () => {
    const h = await parley();
    const turn = (content: string, stream = false) => raw(h.url, '/api/chat', { body: { model: MODEL, session_id: 'trip', messages: [{ role: 'user', content }], stream, options: { num_predict: 5 } } });
    expect((await turn('First')).status).toBe(200);
    expect((await raw(h.url, '/api/conversations/trip', { method: 'DELETE' })).status).toBe(204);
    const viaConversations = await raw(h.url, '/api/conversations/trip');
    expect(viaConversations.status).toBe(410);

    const sent = simChats(h);
    for (const stream of [false, true]) {
      const refused = await turn('Are you there?', stream);
      expect(refused.status).toBe(410);
      expect(refused.headers['content-type']).toMatch(/^application\/json/);
      // The same code and text as the conversations API.
      expect(json(refused)).toEqual(json(viaConversations));
      expect(json(refused).error).toMatch(/^conversation 'trip' was deleted at .*; POST \/api\/conversations\/trip\/restore brings it back$/);
    }
    const session = await raw(h.url, '/api/sessions/trip');
    expect(session.status).toBe(410);
    expect(json(session)).toEqual(json(viaConversations));
    expect(simChats(h)).toBe(sent);

    expect((await raw(h.url, '/api/conversations/trip/restore', { method: 'POST' })).status).toBe(200);
    expect((await turn('Back again')).status).toBe(200);
    const restored = json(await raw(h.url, '/api/sessions/trip'));
    expect(restored.message_count).toBe(4);
    expect((restored.messages as Json[]).map((m) => m.content).filter((c) => c === 'Are you there?')).toEqual([]);
    expect(simChats(h)).toBe(sent + 1);
  });

  test('/admin/sessions/:id shows the context: window, truncations, the summary and what it covers, per-message token counts', async () => {
    const h = await parley({ sim: { models: [{ name: 'llama3.2:latest', contextLength: 512, capabilities: ['completion'] }], replyTokens: 30 }, config: { context: { replyReserveTokens: 64, summaryMaxTokens: 48 } } });
    const words = 'river stone garden window morning story bridge city forest field paper music road cloud ocean'.split(' ');
    for (let i = 0; i < 14; i++) {
      const content = `Turn ${i}: ` + Array.from({ length: 40 }, (_, k) => words[(i + k) % words.length]).join(' ');
      const res = await raw(h.url, '/api/chat', { body: { model: MODEL, session_id: 'long', messages: [{ role: 'user', content }], stream: false } });
      expect(res.status).toBe(200);
      await h.app.context.summaries!.idle();
    }
    const mine = json(await raw(h.url, '/api/sessions/long'));
    const admin = json(await raw(h.url, '/admin/sessions/long', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }));
    const context = admin.context as Json;
    expect(context).toEqual(mine.context);
    expect(context).toMatchObject({ window_tokens: 512, truncations: expect.any(Number), truncated_messages: expect.any(Number) });
    expect(context.truncations as number).toBeGreaterThan(0);
    expect(context.summary).toMatchObject({ text: expect.any(String), covers_through_seq: expect.any(Number), covered_messages: expect.any(Number), tokens: expect.any(Number), model: MODEL });
    const messages = admin.messages as Json[];
    expect(messages).toHaveLength(28);
    expect(messages.every((m) => typeof m.tokens === 'number')).toBe(true);
    expect(messages.filter((m) => m.tokensExact === true).length).toBeGreaterThan(20);
  });
});
