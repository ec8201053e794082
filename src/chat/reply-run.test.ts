import { describe, expect, it } from 'vitest';
import { isParleyError } from '../errors/parley-error.js';
import { ReplyRun, type ReplyEvent } from './reply-run.js';

const REPLY = 'rpl_0123456789abcdef0123456789abcdef';

function run(opts: { graceMs?: number; maxEvents?: number } = {}): ReplyRun {
  return new ReplyRun({ replyId: REPLY, conversationId: 'c1', graceMs: opts.graceMs ?? 60_000, maxEvents: opts.maxEvents ?? 1_000 });
}

function collect(r: ReplyRun, afterSeq = 0): { events: ReplyEvent[]; ended: () => boolean; detach: () => void } {
  const events: ReplyEvent[] = [];
  let ended = false;
  const detach = r.attach(afterSeq, { event: (e) => events.push(e), end: () => (ended = true) });
  return { events, ended: () => ended, detach };
}

const chunk = (o: Record<string, unknown>) => JSON.stringify({ model: 'm', created_at: 't', ...o }) + '\n';

describe('ReplyRun', () => {
  it('turns NDJSON chunks cut anywhere into numbered token, step and done events', async () => {
    const r = run();
    const sub = collect(r);
    r.start(200, { 'Content-Type': 'application/x-ndjson' });
    const bytes = Buffer.from(
      chunk({ message: { role: 'assistant', content: '' }, done: false, queue: { position: 2, depth: 3 } }) +
        chunk({ message: { role: 'assistant', content: 'Hé' }, done: false }) +
        chunk({ message: { role: 'assistant', content: 'llo', thinking: 'hmm' }, done: false }) +
        chunk({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', prompt_eval_count: 5, eval_count: 2, total_duration: 9 }),
    );
    // Split inside the two-byte é and inside a line.
    const cut = bytes.indexOf(Buffer.from('é')) + 1;
    await r.write(bytes.subarray(0, cut));
    await r.write(bytes.subarray(cut, cut + 40));
    await r.write(bytes.subarray(cut + 40));
    expect(sub.events.map((e) => [e.id, e.type])).toEqual([
      [`${REPLY}:1`, 'step'],
      [`${REPLY}:2`, 'token'],
      [`${REPLY}:3`, 'token'],
      [`${REPLY}:4`, 'done'],
    ]);
    expect(sub.events[0]?.data).toEqual({ stage: 'queue', position: 2, depth: 3 });
    expect(sub.events[2]?.data).toEqual({ content: 'llo', thinking: 'hmm' });
    expect(sub.events[3]?.data).toMatchObject({ done_reason: 'stop', prompt_tokens: 5, completion_tokens: 2, total_tokens: 7, timings: { total_duration_ns: 9 } });
    expect(r.content).toBe('Héllo');
    expect(r.finished).toBe(true);
    expect(sub.ended()).toBe(true);
    // Writes after the end are ignored.
    await r.write(chunk({ message: { content: 'late' } }));
    expect(r.lastSeq).toBe(4);
  });

  it('replays only what follows afterSeq, refuses an id beyond the last event, and one whose events were dropped', () => {
    const r = run({ maxEvents: 16 });
    for (let i = 0; i < 20; i++) r.note('token', { content: String(i) });
    expect(collect(r, 18).events.map((e) => e.seq)).toEqual([19, 20]);
    const beyond = (() => {
      try {
        collect(r, 21);
      } catch (e) {
        return e;
      }
    })();
    expect(isParleyError(beyond) && beyond.code).toBe('PARLEY_ERR_CONVERSATION_INVALID_EVENT_ID');
    expect(() => collect(r, 2)).toThrow(/no longer held/);
    expect(collect(r, 4).events[0]?.seq).toBe(5);
  });

  it('marks a degraded answer with one warning, and an error status before the body with an error event', () => {
    const r = run();
    const sub = collect(r);
    r.sendWhole(200, { 'X-Parley-Degraded': 'static' }, chunk({ message: { content: 'Sorry.' }, done: false, degraded: 'static' }) + chunk({ message: { content: '' }, done: true, degraded: 'static' }));
    expect(sub.events.map((e) => e.type)).toEqual(['warning', 'token', 'done']);
    expect(sub.events[0]?.data).toMatchObject({ kind: 'degraded', mode: 'static' });

    const r2 = run();
    const sub2 = collect(r2);
    r2.sendWhole(503, { 'X-Parley-Degraded': 'error' }, JSON.stringify({ error: 'Ollama is unavailable right now' }));
    expect(sub2.events.map((e) => [e.type, e.data.code ?? e.data.kind])).toEqual([['warning', 'degraded'], ['error', 'PARLEY_ERR_DEGRADED_UNAVAILABLE']]);
    expect(sub2.events[1]?.data).toMatchObject({ status: 503, message: 'Ollama is unavailable right now' });
  });

  it('maps pipeline steps, and a stream that ends without done to an incomplete error', () => {
    const r = run();
    const sub = collect(r);
    r.step({ stage: 'context_built', messages: 7, truncatedMessages: 3, summaryUsed: true });
    r.start(200, {});
    r.end();
    expect(sub.events.map((e) => [e.type, e.data.stage ?? e.data.kind ?? e.data.code])).toEqual([
      ['step', 'context_built'],
      ['warning', 'history_truncated'],
      ['step', 'summary_used'],
      ['error', 'PARLEY_ERR_UPSTREAM_INCOMPLETE'],
    ]);
  });

  it('cancels the reply when nobody listens for the grace period, not while someone does', async () => {
    const r = run({ graceMs: 40 });
    const a = collect(r);
    a.detach();
    const b = collect(r);
    await new Promise((res) => setTimeout(res, 80));
    expect(r.signal.aborted).toBe(false);
    b.detach();
    await new Promise((res) => setTimeout(res, 80));
    expect(r.signal.aborted).toBe(true);
    // The pipeline returns without writing more; settle() ends the reply with the reason.
    r.settle();
    const late = collect(r);
    expect(late.events.at(-1)).toMatchObject({ type: 'error', data: { code: 'PARLEY_ERR_CONVERSATION_REPLY_CANCELLED', incomplete: true } });
    expect(late.ended()).toBe(true);
  });
});
