import { loadConfig } from './config/load.js';
import { serve } from './main.js';
import { startSimulator } from './sim/index.js';

/**
 * `npm run demo`: the Ollama simulator on a free port and Parley in front of it on :8000
 * (PARLEY_PORT to change), SQLite under ./data. For trying Parley with curl when no Ollama runs.
 */
const sim = await startSimulator({ tokenIntervalMs: 60, replyTokens: 24 });
const config = loadConfig({ env: process.env, overrides: { upstreams: [sim.url], upstream: { healthIntervalMs: 2_000 } } });
await serve(config);
const base = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${config.port}`;
process.stdout.write(
  [
    '',
    `Parley is running on ${base} in front of the Ollama simulator at ${sim.url} (models: llama3.2, qwen3, nomic-embed-text).`,
    'Try:',
    `  curl ${base}/api/chat -d '{"model":"llama3.2","session_id":"demo","messages":[{"role":"user","content":"Hello!"}]}'`,
    `  curl ${base}/api/sessions/demo`,
    `  OLLAMA_HOST=${base} ollama run llama3.2`,
    '',
  ].join('\n') + '\n',
);
