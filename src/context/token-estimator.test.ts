import { beforeAll, describe, expect, it } from 'vitest';
import { countTokens as gpt2Tokens } from 'gpt-tokenizer/encoding/gpt2';
import { chatPromptTokens } from '../sim/index.js';
import { TokenEstimator, loadTokenizer, rawMessageTokens } from './token-estimator.js';

beforeAll(loadTokenizer);

/**
 * A fixed corpus of chat messages (prose, questions, code, numbers, lists, other languages).
 * "Exact" is what the simulator charges as prompt tokens (countTokens(content) + 4 per message),
 * or what a model with GPT-2's tokenizer would. Calibration sees half of the pairs, the figures
 * are measured on the other half (messages the estimator never saw).
 */
const CORPUS: string[] = [
  'Hello! Can you help me plan a three-day trip to Lisbon in October?',
  'Sure. Day one: Alfama and the castle; day two: Belém and the LX Factory; day three: a train to Sintra.',
  "What's the difference between a process and a thread in an operating system?",
  'A process has its own address space; threads share the address space of their process, so they communicate cheaply but must synchronise.',
  'function add(a, b) {\n  return a + b;\n}\nconsole.log(add(2, 3)); // 5',
  'The function returns the sum; `console.log` prints 5. In TypeScript you would annotate it as (a: number, b: number): number.',
  'Convert 72°F to Celsius, and 100 km/h to m/s, please.',
  '72°F is about 22.2°C; 100 km/h is 27.78 m/s.',
  'List five prime numbers greater than 100.',
  '101, 103, 107, 109 and 113.',
  "I'm writing a cover letter for a junior data analyst role - can you make this sentence sound less stiff: 'I possess strong analytical capabilities.'",
  "Try: 'I enjoy digging into data until the story behind the numbers becomes clear.'",
  'SELECT customer_id, SUM(amount) AS total FROM orders WHERE created_at >= NOW() - INTERVAL 30 DAY GROUP BY customer_id ORDER BY total DESC LIMIT 10;',
  'That query returns the ten customers with the highest order totals over the last 30 days.',
  'Explique-moi la photosynthèse en deux phrases, s’il te plaît.',
  'Les plantes captent la lumière pour transformer l’eau et le dioxyde de carbone en sucres. Elles rejettent de l’oxygène au passage.',
  'Wie spät ist es in Tokio, wenn es in Berlin 15:30 Uhr ist?',
  'Im Winter ist es in Tokio dann 23:30 Uhr, im Sommer 22:30 Uhr.',
  'Summarise the plot of Hamlet in one paragraph without spoilers for the ending.',
  'Prince Hamlet returns to Denmark to find his father dead and his uncle on the throne, married to his mother; a ghost tells him more.',
  '{"name": "parley", "version": "0.1.0", "dependencies": {"fastify": "^5.0.0", "kysely": "^0.28.0"}}',
  'The manifest names the package and pins two dependencies with caret ranges, so minor updates are allowed.',
  'Why is the sky blue?',
  'Sunlight scatters off air molecules, and shorter (blue) wavelengths scatter far more than red ones - Rayleigh scattering.',
  'My phone number is +1 (555) 010-2030 and my order id is A-77812-Z; can you check the status?',
  "I can't look up orders, but the store's support page or the order e-mail will have a tracking link.",
  '1. Preheat the oven to 200 °C.\n2. Slice the potatoes thinly.\n3. Layer with cream and garlic.\n4. Bake for 45 minutes.',
  'Great recipe: a gratin dauphinois. Add nutmeg and Gruyère if you like it richer.',
  'Translate to Spanish: "The meeting has been moved to Thursday at 10 a.m."',
  '"La reunión se ha trasladado al jueves a las 10 de la mañana."',
  'def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a',
  'This is the iterative Fibonacci; fib(10) returns 55 in O(n) time and O(1) space.',
  'https://example.com/search?q=context+window&lang=en#results - what does the part after # do?',
  'The fragment (#results) is never sent to the server; the browser uses it to scroll to an element on the page.',
  'Give me a haiku about rain on a tin roof.',
  'Tin roof drums softly / a thousand small fingers tap / the night keeps its time.',
  'Can you explain big-O notation to a twelve-year-old?',
  'It tells you how much slower a recipe gets when you cook for more people: twice the guests, twice the work - or much more.',
  'Rate these from 1-10: pineapple pizza, anchovies, truffle oil.',
  "Taste is personal, but many people would say 6, 4 and 7 - I'd rather help you pick toppings for a party!",
];

/** The simulator's prompt tokens for one message. */
const simExact = (content: string): number => chatPromptTokens([{ content }], undefined);
/** A model whose tokenizer is GPT-2's BPE (much less frugal than o200k on code and other languages) with a 5-token template per message. */
const gpt2Exact = (content: string): number => gpt2Tokens(content) + 5;
const asMessage = (content: string, i: number) => ({ role: i % 2 === 0 ? 'user' : 'assistant', content });
/** Each pair (a question and its answer, one topic) gives one message to each half, questions and answers alternating. */
const inTrain = (i: number): boolean => i % 4 === 0 || i % 4 === 3;
const TEST = CORPUS.filter((_, i) => !inTrain(i));

/** Mean absolute relative error of per-message estimates, and the relative error of their sum. */
function errors(est: TokenEstimator, texts: string[], exact: (t: string) => number): { perMessage: number; total: number } {
  let rel = 0;
  let sumEst = 0;
  let sumExact = 0;
  texts.forEach((t) => {
    const e = est.estimate('m', { role: 'user', content: t });
    const x = exact(t);
    rel += Math.abs(e - x) / x;
    sumEst += e;
    sumExact += x;
  });
  return { perMessage: rel / texts.length, total: Math.abs(sumEst - sumExact) / sumExact };
}

/** Calibrates as the pipeline does: each prompt message's exact count (1 message), each reply's eval_count (0 messages). */
function calibrate(est: TokenEstimator, exact: (t: string) => number, overhead: number): void {
  CORPUS.forEach((t, i) => {
    if (!inTrain(i)) return;
    const m = asMessage(t, i);
    if (m.role === 'user') est.observe('m', { rawTokens: rawMessageTokens(m), messages: 1, exactTokens: exact(t) });
    else est.observe('m', { rawTokens: rawMessageTokens(m), messages: 0, exactTokens: exact(t) - overhead });
  });
}

function report(name: string, before: { perMessage: number; total: number }, after: { perMessage: number; total: number }, est: TokenEstimator): void {
  if (process.env['PARLEY_PRINT_ESTIMATES'] !== '1') return;
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const c = est.calibration('m');
  process.stdout.write(
    `${name}: ${TEST.length} held-out messages; before calibration ${pct(before.perMessage)} per message, ${pct(before.total)} on the total; ` +
      `after ${pct(after.perMessage)} per message, ${pct(after.total)} on the total (ratio ${c.ratio.toFixed(3)}, overhead ${c.overheadTokens.toFixed(2)})\n`,
  );
}

describe('TokenEstimator on a fixed corpus', () => {
  it('estimates the simulator within 10% per message and 5% on the total, before and after calibration', () => {
    const est = new TokenEstimator();
    const before = errors(est, TEST, simExact);
    calibrate(est, simExact, 4);
    const after = errors(est, TEST, simExact);
    report('simulator', before, after, est);
    // The simulator's word/punctuation count is close to o200k on average: there is no bias to
    // remove, the per-message scatter is what a linear calibration cannot remove, and 20 messages
    // of calibration carry a few percent of sampling noise.
    for (const e of [before, after]) {
      expect(e.perMessage).toBeLessThan(0.1);
      expect(e.total).toBeLessThan(0.05);
    }
  });

  it('removes a tokenizer bias: a GPT-2-tokenizer model goes from over 10% to under 3% on the total', () => {
    const est = new TokenEstimator();
    const before = errors(est, TEST, gpt2Exact);
    calibrate(est, gpt2Exact, 5);
    const after = errors(est, TEST, gpt2Exact);
    report('gpt2 model', before, after, est);
    expect(before.total).toBeGreaterThan(0.1);
    expect(after.total).toBeLessThan(0.03);
    expect(after.perMessage).toBeLessThan(before.perMessage);
  });

  it('keeps models apart and learns the per-message overhead from replies and prompts together', () => {
    const est = new TokenEstimator({ defaultOverheadTokens: 0 });
    // Replies: eval_count has no template overhead; prompts: 7 tokens of template per message.
    for (let i = 0; i < 1000; i++) {
      const raw = 10 + (i % 40) * 3;
      est.observe('m1', { rawTokens: raw, messages: 0, exactTokens: raw * 2 });
      est.observe('m1', { rawTokens: raw, messages: 1, exactTokens: raw * 2 + 7 });
    }
    const c = est.calibration('M1:latest');
    // The prior (overhead = default, worth 50 messages) fades as observations accumulate.
    expect(c.ratio).toBeCloseTo(2, 1);
    expect(c.overheadTokens).toBeGreaterThan(5.5);
    expect(c.overheadTokens).toBeLessThanOrEqual(7);
    expect(est.calibration('other')).toEqual({ ratio: 1, overheadTokens: 0, observations: 0 });
  });

  it('observes every reply until a model is calibrated, then one in eight, per model', () => {
    const est = new TokenEstimator();
    const sampled = (model: string, n: number) => Array.from({ length: n }, () => est.wantsReplySample(model)).filter(Boolean).length;
    expect(sampled('m', 50)).toBe(50);
    for (let i = 0; i < 300; i++) est.observe('m', { rawTokens: 10, messages: 1, exactTokens: 14 });
    expect(sampled('m', 800)).toBe(100);
    // Another model is not calibrated by m's observations.
    expect(sampled('other', 20)).toBe(20);
  });

  it('counts tool calls and does not throw on text that looks like special tokens', () => {
    const est = new TokenEstimator();
    const plain = est.estimate('m', { role: 'assistant', content: '' });
    const withCall = est.estimate('m', { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Tokyo' } } }] });
    expect(withCall).toBeGreaterThan(plain);
    expect(est.estimate('m', { role: 'user', content: 'a <|endoftext|> b' })).toBeGreaterThan(4);
  });
});
