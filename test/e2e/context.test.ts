import { afterEach, describe, expect, test } from 'vitest';
import { SUMMARY_PREFIX } from '../../src/context/summary-service.js';
import { simReplyText, type RecordedRequest } from '../../src/sim/index.js';
import { dialects } from '../helpers/databases.js';
import { startHarness, type Harness, type HarnessOptions } from '../helpers/harness.js';

/**
 * Context management end to end (issue 4): Parley in front of the simulator over real HTTP, a real
 * database. The simulator counts every prompt with its own tokenizer (countTokens + 4 per message)
 * and, like Ollama, would cut an over-long prompt silently: `requests[].promptTokens` is the count
 * before any cut, so it proves what Parley sent fits.
 */

const MODEL = 'llama3.2';
const WINDOW = 1024;
const SYSTEM = 'You are a patient travel assistant. Answer briefly and remember what the user told you.';
const SUMMARY_INSTRUCTION = 'You keep a running summary';

type Chunk = Record<string, unknown> & { message?: { content: string }; done?: boolean; parley?: { truncated_messages: number; summary: boolean }; error?: string };
interface WireSession {
  message_count: number;
  messages: Array<{ role: string; content: string; tokens?: number; tokens_exact?: boolean }>;
  context: { window_tokens: number | null; truncations: number; truncated_messages: number; truncated_turns: number; summaries: number; summary: { text: string; covers_through_seq: number; covered_messages: number; model: string; created_at: string } | null };
}

const WORDS = 'river stone garden window morning story bridge city forest field paper music road cloud ocean mountain question letter number signal'.split(' ');
/** A deterministic user message of 8-70 words about turn `i`. */
function userText(i: number): string {
  const n = 8 + ((i * 37) % 63);
  const words = Array.from({ length: n }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]);
  return `Turn ${i}: ${words.join(' ')}, please note this.`;
}

/** Summary requests get a scripted summary; chat turns a 30-token reply. */
function script({ body }: { body: Record<string, unknown> }): string {
  const messages = body.messages as Array<{ role: string; content: string }>;
  if (messages[0]?.content.startsWith(SUMMARY_INSTRUCTION)) return 'SUMMARY-MARK: the user is planning trips and listed many places, roads and rivers to remember.';
  return simReplyText(messages.at(-1)?.content ?? '', 30);
}

function ndjson(text: string): Chunk[] {
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Chunk);
}

const chatRequests = (h: Harness): RecordedRequest[] => h.sim.requests.filter((r) => r.path === '/api/chat');
const isSummaryRequest = (r: RecordedRequest): boolean => ((r.body as { messages: Array<{ content: string }> }).messages[0]?.content ?? '').startsWith(SUMMARY_INSTRUCTION);

describe.each(dialects)('context window on $name', (dialect) => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function parley(opts: HarnessOptions = {}): Promise<Harness> {
    const h = await startHarness({
      database: await dialect.open(),
      sim: { models: [{ name: 'llama3.2:latest', contextLength: WINDOW, capabilities: ['completion', 'tools'] }], script },
      ...opts,
      config: { context: { replyReserveTokens: 64, summaryMaxTokens: 64 }, ...opts.config },
    });
    cleanups.push(() => h.close());
    return h;
  }

  async function turn(h: Harness, sessionId: string, content: string, extra: Record<string, unknown> = {}): Promise<{ res: Response; chunks: Chunk[] }> {
    const res = await fetch(`${h.url}/api/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model: MODEL, session_id: sessionId, messages: [{ role: 'user', content }], ...extra }) });
    return { res, chunks: ndjson(await res.text()) };
  }

  test('a 200-turn conversation never exceeds the window, keeps the system prompt, gains a summary and shows its truncations', async () => {
    const h = await parley();
    const sid = 'long-trip';
    const first = await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: sid, messages: [{ role: 'system', content: SYSTEM }, { role: 'user', content: userText(0) }] }) });
    expect(first.status).toBe(200);
    await first.text();
    let truncatedTurns = 0;
    let firstTruncated = -1;
    for (let i = 1; i < 200; i++) {
      const { res, chunks } = await turn(h, sid, userText(i));
      expect(res.status).toBe(200);
      const final = chunks.at(-1)!;
      expect(final.done).toBe(true);
      const header = res.headers.get('x-parley-truncated');
      if (header !== null) {
        truncatedTurns++;
        if (firstTruncated < 0) firstTruncated = i;
        expect(final.parley?.truncated_messages).toBe(Number(header));
      } else {
        expect(final.parley).toBeUndefined();
      }
      // A user pauses between turns: the background summary gets an idle upstream.
      await h.app.context.summaries!.idle();
    }
    const turns = chatRequests(h).filter((r) => !isSummaryRequest(r));
    const summaries = chatRequests(h).filter(isSummaryRequest);
    expect(turns).toHaveLength(200);
    const maxPrompt = Math.max(...chatRequests(h).map((r) => r.promptTokens!));
    expect(maxPrompt).toBeLessThanOrEqual(WINDOW);
    for (const r of turns) {
      const messages = (r.body as { messages: Array<{ role: string; content: string }> }).messages;
      expect(messages[0]).toEqual({ role: 'system', content: SYSTEM });
      // The reply reserve is kept free too (Parley's counts are estimates, the simulator checks).
      expect(r.promptTokens! + 64).toBeLessThanOrEqual(WINDOW);
    }
    expect(firstTruncated).toBeGreaterThan(0);
    expect(summaries.length).toBeGreaterThan(0);
    // Once a summary exists, every truncated turn carries it right after the system prompt.
    const withSummary = turns.filter((r) => (r.body as { messages: Array<{ content: string }> }).messages[1]?.content.startsWith(SUMMARY_PREFIX + 'SUMMARY-MARK'));
    expect(withSummary.length).toBeGreaterThan(150);

    const session = (await (await fetch(`${h.url}/api/sessions/${sid}`)).json()) as WireSession;
    expect(session.message_count).toBe(401);
    expect(session.context.truncations).toBe(truncatedTurns);
    expect(session.context.truncated_messages).toBeGreaterThan(300);
    expect(session.context.truncated_turns).toBeGreaterThan(150);
    expect(session.context.window_tokens).toBe(WINDOW);
    expect(session.context.summary).toMatchObject({ text: expect.stringContaining('SUMMARY-MARK'), model: MODEL, created_at: expect.any(String) });
    expect(session.context.summary!.covered_messages).toBeGreaterThan(300);
    expect(session.context.summaries).toBe(summaries.length);
    // Every message has a count; all but a few derived exactly from the simulator's figures.
    expect(session.messages.every((m) => typeof m.tokens === 'number')).toBe(true);
    expect(session.messages.filter((m) => m.tokens_exact).length).toBeGreaterThan(390);
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`parley_context_truncations_total ${truncatedTurns}\\b`));
    if (process.env['PARLEY_PRINT_CONTEXT'] === '1') {
      process.stdout.write(
        `200 turns, window ${WINDOW}: max prompt ${maxPrompt} tokens (simulator's count), first truncation at turn ${firstTruncated}, ` +
          `${truncatedTurns} turns truncated, ${session.context.truncated_messages} messages left out of the last one, ${summaries.length} summaries made, ` +
          `${session.messages.filter((m) => m.tokens_exact).length}/${session.message_count} counts exact\n`,
      );
    }
  }, 60_000);

  test('stored counts match the simulator: the sum over what was sent equals its prompt_eval_count', async () => {
    const h = await parley();
    const sid = 'exact';
    for (let i = 0; i < 6; i++) await turn(h, sid, userText(i));
    const session = (await (await fetch(`${h.url}/api/sessions/${sid}`)).json()) as WireSession;
    const last = chatRequests(h).at(-1)!;
    // The last request carried all stored messages but the last reply.
    const sent = session.messages.slice(0, -1).reduce((n, m) => n + m.tokens!, 0);
    expect(sent).toBe(last.promptTokens);
    expect(session.messages.every((m) => m.tokens_exact)).toBe(true);
  });

  test('answers 400 naming both numbers when the system prompt and the new message cannot fit, and sends and stores nothing', async () => {
    const h = await parley();
    const huge = Array.from({ length: 1200 }, (_, i) => WORDS[i % WORDS.length]).join(' ');
    const { res, chunks } = await turn(h, 'too-long', huge);
    expect(res.status).toBe(400);
    expect(chunks[0]!.error).toMatch(/need about \d+ tokens, but model 'llama3.2' has a context window of 1024 tokens/);
    expect(chatRequests(h)).toHaveLength(0);
    expect((await fetch(`${h.url}/api/sessions/too-long`)).status).toBe(404);
  });

  test('a turn that imports a long history stores all of it and sends what fits, ending with the last user message', async () => {
    const h = await parley();
    const history = Array.from({ length: 81 }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content: userText(i) }));
    const res = await fetch(`${h.url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: MODEL, session_id: 'import', stream: false, messages: [{ role: 'system', content: SYSTEM }, ...history] }) });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('x-parley-truncated'))).toBeGreaterThan(0);
    const sent = chatRequests(h).filter((r) => !isSummaryRequest(r));
    expect(sent).toHaveLength(1);
    const messages = (sent[0]!.body as { messages: Array<{ role: string; content: string }> }).messages;
    expect(messages[0]).toEqual({ role: 'system', content: SYSTEM });
    expect(messages.at(-1)).toEqual(history.at(-1));
    expect(sent[0]!.promptTokens).toBeLessThanOrEqual(WINDOW - 64);
    const session = (await (await fetch(`${h.url}/api/sessions/import`)).json()) as WireSession;
    expect(session.message_count).toBe(83);
  });

  test('options.num_ctx wins over the model context length, and num_predict is the reply reserve', async () => {
    const h = await parley();
    for (let i = 0; i < 12; i++) {
      const { res } = await turn(h, 'small', userText(i), { options: { num_ctx: 300, num_predict: 40 } });
      expect(res.status).toBe(200);
    }
    const turns = chatRequests(h).filter((r) => !isSummaryRequest(r));
    expect(Math.max(...turns.map((r) => r.promptTokens!))).toBeLessThanOrEqual(300 - 40);
    const session = (await (await fetch(`${h.url}/api/sessions/small`)).json()) as WireSession;
    expect(session.context.window_tokens).toBe(300);
    expect(session.context.truncations).toBeGreaterThan(0);
  });

  test('with context.summary off, history is dropped without a summary and nothing extra goes upstream', async () => {
    const h = await parley({ config: { context: { replyReserveTokens: 64, summary: 'off' } } });
    for (let i = 0; i < 40; i++) await turn(h, 'no-summary', userText(i));
    expect(h.app.context.summaries).toBeUndefined();
    expect(chatRequests(h)).toHaveLength(40);
    expect(chatRequests(h).some(isSummaryRequest)).toBe(false);
    const session = (await (await fetch(`${h.url}/api/sessions/no-summary`)).json()) as WireSession;
    expect(session.context.truncations).toBeGreaterThan(0);
    expect(session.context.summary).toBeNull();
  });
});
