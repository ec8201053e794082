import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RecordedRequest, SimFaults, SimRuntimeOptions, SimStats } from './sim-types.js';

/**
 * Control endpoints for a simulator in another process (never recorded, exempt from faults and
 * the Host guard). All answer JSON:
 * - `GET  /_sim/requests` → RecordedRequest[]
 * - `GET  /_sim/stats`    → `{active, waiting, maxConcurrent, loaded}`
 * - `POST /_sim/faults`   body SimFaults (replaces the set; `{}` clears) → the faults now in force
 * - `POST /_sim/options`  body runtime options (`script` as a string array) → `{"ok":true}`
 * - `POST /_sim/reset`    → `{"ok":true}`
 * Bad JSON answers 400 `{"error":"…"}`; other paths 404.
 */

/** What the control endpoints need from the simulator. */
export interface Controllable {
  readonly requests: RecordedRequest[];
  stats(): SimStats;
  setFaults(f: SimFaults): void;
  setOptions(o: SimRuntimeOptions): void;
  reset(): void;
}

const OPTION_KEYS = ['ttftMs', 'tokenIntervalMs', 'replyTokens', 'script', 'parallel', 'maxQueue', 'loadMs'] as const;

function reply(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Serves one `/_sim/*` request. */
export async function handleControl(
  sim: Controllable,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  readBody: (req: IncomingMessage) => Promise<string | undefined>,
): Promise<void> {
  const key = `${req.method ?? 'GET'} ${path}`;
  if (key === 'GET /_sim/requests') return reply(res, 200, sim.requests);
  if (key === 'GET /_sim/stats') return reply(res, 200, sim.stats());
  if (key !== 'POST /_sim/faults' && key !== 'POST /_sim/options' && key !== 'POST /_sim/reset') {
    req.resume();
    return reply(res, 404, { error: `unknown control endpoint ${key}` });
  }
  const text = (await readBody(req)) ?? '';
  let body: Record<string, unknown> = {};
  if (text.trim() !== '') {
    try {
      const v: unknown = JSON.parse(text);
      if (v && typeof v === 'object' && !Array.isArray(v)) body = v as Record<string, unknown>;
      else return reply(res, 400, { error: 'body must be a JSON object' });
    } catch (e) {
      return reply(res, 400, { error: e instanceof Error ? e.message : String(e) });
    }
  }
  if (key === 'POST /_sim/faults') {
    sim.setFaults(body as SimFaults);
    return reply(res, 200, body);
  }
  if (key === 'POST /_sim/options') {
    const o: Record<string, unknown> = {};
    for (const k of OPTION_KEYS) if (k in body) o[k] = body[k];
    if ('script' in o && o.script !== undefined && !(Array.isArray(o.script) && o.script.every((s) => typeof s === 'string'))) {
      return reply(res, 400, { error: 'script must be an array of strings' });
    }
    sim.setOptions(o as SimRuntimeOptions);
    return reply(res, 200, { ok: true });
  }
  sim.reset();
  reply(res, 200, { ok: true });
}
