// @ts-check
/**
 * The upstream: Parley's own Ollama simulator (dist/sim) in its own process, driven over IPC by
 * the orchestrator (`{op:'options', options}` → setOptions). It also answers OpenAI's
 * /v1/chat/completions (SSE), which Portkey's `ollama` provider calls.
 */
/** The compiled simulator, typed by its source. */
const { startSimulator } = /** @type {typeof import('../src/sim/index.js')} */ (await import(new URL('../dist/sim/index.js', import.meta.url).href));

const sim = await startSimulator({
  host: '127.0.0.1',
  port: 0,
  parallel: 4096,
  maxQueue: 8192,
  maxRecordedRequests: 200,
  ttftMs: 0,
  tokenIntervalMs: 0,
  replyTokens: 8,
});
const send = (/** @type {unknown} */ m) => process.send?.(m);
process.on('message', (/** @type {any} */ m) => {
  if (m?.op === 'options') {
    sim.setOptions(m.options);
    sim.reset();
    send({ op: 'options-ok', seq: m.seq });
  } else if (m?.op === 'close') {
    void sim.close().then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
send({ op: 'ready', url: sim.url, pid: process.pid });
