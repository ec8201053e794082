import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { simReplyText, startSimulator, type Simulator } from '../../src/sim/index.js';
import { ndjsonReader, postChat, startParley, storedMessages, type ParleyProcess } from '../helpers/parley-process.js';

/**
 * Crash durability: Parley runs as a child process on a SQLite file and is killed with SIGKILL
 * (no shutdown code runs), then a second Parley is started on the same file and asked what it
 * remembers through `GET /api/sessions/:id`, as a user would.
 */

const MODEL = 'llama3.2';

describe('crash durability (kill -9 of a Parley process on SQLite)', () => {
  let sim: Simulator;
  let dir: string;
  let dbFile: string;
  const procs: ParleyProcess[] = [];

  beforeEach(async () => {
    sim = await startSimulator({});
    dir = await mkdtemp(join(tmpdir(), 'parley-crash-'));
    dbFile = join(dir, 'data', 'parley.db');
  });

  afterEach(async () => {
    for (const p of procs.splice(0)) await p.kill();
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function parley(env: Record<string, string> = {}): Promise<ParleyProcess> {
    const p = await startParley({ upstreams: [sim.url], databaseUrl: dbFile, env });
    procs.push(p);
    return p;
  }

  test('a turn whose final done:true chunk reached the client survives kill -9 right after it', async () => {
    const first = await parley();
    const u1 = { role: 'user', content: 'Remember: the meeting is on Thursday.' };
    const reader = ndjsonReader(await postChat(first, { model: MODEL, messages: [u1], session_id: 'durable' }));
    let text = '';
    let final: Record<string, unknown> | undefined;
    for (let c = await reader.next(); c; c = await reader.next()) {
      text += (c.message as { content: string }).content;
      if (c.done === true) {
        final = c;
        first.signal('SIGKILL'); // at once: no more reading, no graceful anything
        break;
      }
    }
    expect(final).toBeDefined();
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    await reader.cancel();

    const second = await parley();
    const messages = await storedMessages(second, 'durable');
    expect(messages).toHaveLength(2);
    expect(messages[0]).toMatchObject({ role: 'user', content: u1.content, status: 'complete' });
    expect(messages[1]).toMatchObject({
      role: 'assistant',
      content: text,
      status: 'complete',
      model: MODEL,
      done_reason: 'stop',
      eval_count: final!.eval_count,
      prompt_eval_count: final!.prompt_eval_count,
    });
  });

  test('a reply cut by kill -9 mid-stream is there after restart, incomplete, with the text saved so far, and is left out of the next turn', async () => {
    sim.setOptions({ tokenIntervalMs: 50, replyTokens: 40 });
    const first = await parley({ PARLEY_SESSION_PARTIAL_SAVE_INTERVAL_MS: '100' });
    const u1 = { role: 'user', content: 'Write a long poem about rivers.' };
    const reader = ndjsonReader(await postChat(first, { model: MODEL, messages: [u1], session_id: 'cut-short' }));
    let received = '';
    for (let n = 0; n < 8; n++) {
      const c = await reader.next();
      expect(c?.done).toBe(false);
      received += (c!.message as { content: string }).content;
    }
    first.signal('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    await reader.cancel();

    sim.setOptions({ tokenIntervalMs: 0, replyTokens: 8 });
    const second = await parley();
    const messages = await storedMessages(second, 'cut-short');
    expect(messages.map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'incomplete'],
    ]);
    const saved = messages[1]!.content;
    // 8 chunks 50 ms apart took ~350 ms: at least one partial save (every 100 ms) has run.
    expect(saved.length).toBeGreaterThan(0);
    expect(received.startsWith(saved)).toBe(true);
    expect(simReplyText(u1.content, 40).startsWith(received)).toBe(true);

    // The conversation goes on; the model is not told it said the cut-off text.
    const u2 = { role: 'user', content: 'Sorry, you were cut off. A short one then.' };
    const res = await postChat(second, { model: MODEL, messages: [u2], session_id: 'cut-short', stream: false });
    expect(res.status).toBe(200);
    await res.json();
    const upstream = sim.requests.filter((r) => r.path === '/api/chat').map((r) => (r.body as { messages: unknown }).messages);
    expect(upstream.at(-1)).toEqual([u1, u2]);
    expect((await storedMessages(second, 'cut-short')).map((m) => [m.role, m.status])).toEqual([
      ['user', 'complete'],
      ['assistant', 'incomplete'],
      ['user', 'complete'],
      ['assistant', 'complete'],
    ]);
  });
});
