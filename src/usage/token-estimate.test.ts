import { describe, expect, it } from 'vitest';
import { UsageMeter } from './token-estimate.js';

const chunk = (content: string): string => JSON.stringify({ model: 'm', created_at: '2026-11-21T00:00:00Z', message: { role: 'assistant', content }, done: false }) + '\n';
const FINAL = JSON.stringify({ model: 'm', done: true, done_reason: 'stop', total_duration: 5_000_000, load_duration: 1234, prompt_eval_count: 26, eval_count: 290 }) + '\n';

describe('UsageMeter', () => {
  it('reads the counts of a final chunk split across reads, after a long multi-byte reply', () => {
    const meter = new UsageMeter();
    for (let i = 0; i < 2000; i++) meter.push(Buffer.from(chunk(`мир ${i} 🌍 `)));
    const bytes = Buffer.from(FINAL);
    // Cut inside the field name the meter looks for.
    const cut = FINAL.indexOf('eval_count') + 4;
    meter.push(bytes.subarray(0, cut));
    meter.push(bytes.subarray(cut));
    expect(meter.counts()).toEqual({ promptTokens: 26, replyTokens: 290, loadDurationNs: 1234 });
  });

  it('reads a whole stream:false body pushed in one piece', () => {
    const meter = new UsageMeter();
    const body = JSON.stringify({ model: 'm', message: { role: 'assistant', content: 'x'.repeat(100_000) }, done: true, prompt_eval_count: 7, eval_count: 9 });
    meter.push(Buffer.from(body));
    expect(meter.counts()).toEqual({ promptTokens: 7, replyTokens: 9, loadDurationNs: undefined });
  });

  it('says nothing when the reply carried no counts (cut off, or an error)', () => {
    const meter = new UsageMeter();
    expect(meter.counts()).toBeUndefined();
    meter.push(Buffer.from(chunk('partial')));
    expect(meter.counts()).toBeUndefined();
  });
});
