// @ts-check
/**
 * The relay loops alone, without sockets: CPU per chunk of Parley's raw relay (a plain Ollama
 * call) and session relay (a session turn, storage stubbed out) against a bare `for await` over
 * the same chunks. Each chunk is one NDJSON line, as a 50 tokens/s stream arrives (one read per
 * token). Not part of the report: a quick check while working on the per-chunk path.
 *
 *   npm run build && node bench/relay-loop.mjs [streams=400] [tokens=250]
 */
import { Readable } from 'node:stream';

const dist = new URL('../dist/', import.meta.url).href;
/** @type {typeof import('../src/chat/session-relay.js')} */
const { relaySessionStream } = await import(`${dist}chat/session-relay.js`);
/** @type {typeof import('../src/chat/raw-relay.js')} */
const { relayRaw } = await import(`${dist}chat/raw-relay.js`);
/** @type {typeof import('../src/conversations/turn-recorder.js')} */
const { TurnRecorder } = await import(`${dist}conversations/turn-recorder.js`);
/** @type {typeof import('../src/usage/token-estimate.js')} */
const { UsageMeter } = await import(`${dist}usage/token-estimate.js`);

const STREAMS = Number(process.argv[2] ?? 400);
const TOKENS = Number(process.argv[3] ?? 250);
const at = new Date().toISOString();
const lines = Array.from({ length: TOKENS }, (_, i) => Buffer.from(JSON.stringify({ model: 'llama3.2', created_at: at, message: { role: 'assistant', content: ` word${i}` }, done: false }) + '\n'));
lines.push(Buffer.from(JSON.stringify({ model: 'llama3.2', created_at: at, message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop', total_duration: 1, load_duration: 1, prompt_eval_count: 5, prompt_eval_duration: 1, eval_count: TOKENS, eval_duration: 1 }) + '\n'));

/** An undici response whose body (a Readable, as undici's) gives one line per read. */
const upstream = () => /** @type {any} */ ({ statusCode: 200, headers: { 'content-type': 'application/x-ndjson' }, body: Readable.from((async function* () { for (const l of lines) { yield l; await null; } })(), { objectMode: false }) });
const done = Promise.resolve();
/** A client that takes every write at once. */
const client = () => /** @type {any} */ ({ started: false, gone: false, cutOff: false, start() { this.started = true; }, limit() {}, write: () => done, end() {}, sendWhole() {}, fail() {} });
const store = /** @type {any} */ ({
  beginTurn: async (/** @type {any} */ i) => ({ sessionId: i.sessionId, model: i.model, messages: i.messages, assistantMessageId: 2, assistantSeq: 2, messageIds: [1], conversationId: 'c', messageCount: 2 }),
  completeTurn: async () => {},
  savePartial: async () => {},
});
const logger = /** @type {any} */ ({ error() {}, warn() {} });

const loops = {
  bare: async () => {
    for await (const b of upstream().body) void b;
  },
  'bare-data': () => new Promise((resolve) => upstream().body.on('data', (/** @type {Buffer} */ b) => void b).on('end', resolve)),
  raw: async () => {
    const meter = new UsageMeter();
    await relayRaw(upstream(), client(), 'http://upstream', (b) => meter.push(b));
  },
  session: async () => {
    const meter = new UsageMeter();
    const recorder = new TurnRecorder(store, 's', 'llama3.2', [{ role: 'user', content: 'hi' }], 0, () => new Date(), logger);
    await relaySessionStream(upstream(), client(), { sessionId: 's', clientStream: true, recorder, upstreamUrl: 'http://upstream', tap: (b) => meter.push(b) });
  },
};
// Twice in turn: the first pass warms the JIT.
for (const pass of [1, 2]) {
  for (const [name, loop] of Object.entries(loops)) {
    const c0 = process.cpuUsage();
    for (let s = 0; s < STREAMS; s++) await loop();
    const c = process.cpuUsage(c0);
    if (pass === 2) console.log(`${name.padEnd(8)} ${((c.user + c.system) / (STREAMS * (TOKENS + 1))).toFixed(2)} µs CPU per chunk`);
  }
}
