import { describe, expect, it } from 'vitest';
import { parseChatChunk } from './chat-chunk.js';

const line = (o: unknown): string => JSON.stringify(o);
const at = '2026-11-22T01:02:03.456789Z';

describe('parseChatChunk', () => {
  it('reads the content of plain mid-reply chunks exactly as JSON.parse does', () => {
    const contents = ['The', ' word', '', 'say "hi"', 'a\\b', 'line\nbreak\ttab', '<b>&amp;</b>', 'ünïcödé 😀', '\u0001', 'back\\"slash'];
    for (const content of contents) {
      const text = line({ model: 'llama3.2:3b', created_at: at, message: { role: 'assistant', content }, done: false });
      expect(parseChatChunk(text)).toEqual({ message: { role: 'assistant', content }, done: false });
    }
    // Go's encoder escapes <, > and & as \u003c, \u003e, \u0026.
    expect(parseChatChunk(`{"model":"m","created_at":"${at}","message":{"role":"assistant","content":"\\u003cb\\u003e \\u0026"},"done":false}`)).toEqual({ message: { role: 'assistant', content: '<b> &' }, done: false });
  });

  it('parses every other chunk whole, with all its fields', () => {
    const others = [
      { model: 'm', created_at: at, message: { role: 'assistant', content: '', thinking: 'hmm' }, done: false },
      { model: 'm', created_at: at, message: { role: 'assistant', content: '', tool_calls: [{ function: { name: 'f', arguments: { a: 1 } } }] }, done: false },
      { model: 'm', created_at: at, message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', eval_count: 3 },
      { error: 'model crashed' },
      { model: 'm', created_at: at, message: { role: 'assistant', content: 'x' }, done: false, extra: 1 },
      { created_at: at, model: 'm', message: { role: 'assistant', content: 'x' }, done: false },
      { model: 'a"b', created_at: at, message: { role: 'assistant', content: 'x' }, done: false },
    ];
    for (const o of others) expect(parseChatChunk(line(o))).toEqual(o);
  });

  it('parses a line of many megabytes whole, without overflowing the stack', () => {
    const content = 'a "quoted" \\ path '.repeat(1_000_000);
    for (const done of [false, true]) {
      const o = { model: 'm', created_at: at, message: { role: 'assistant', content }, done };
      expect(parseChatChunk(line(o))).toEqual(o);
    }
  });

  it('returns undefined for lines that are not a JSON object, as the relay skips them', () => {
    for (const text of ['not json', '{"model":', '[1,2]', '42', 'null', '"text"']) expect(parseChatChunk(text)).toBeUndefined();
    // The plain shape with an escape JSON does not have: invalid, as JSON.parse finds it.
    const bad = `{"model":"m","created_at":"${at}","message":{"role":"assistant","content":"a\\qb"},"done":false}`;
    expect(() => JSON.parse(bad)).toThrow(SyntaxError);
    expect(parseChatChunk(bad)).toBeUndefined();
  });
});
