import { expect } from 'vitest';
import { request } from 'undici';

/** Tests of Parley's Ollama simulator over real HTTP (src/sim/*.test.ts). */

export type Json = Record<string, any>;

/** One request to the simulator at `url`: status, Content-Type, headers and the body as text. */
export async function callSim(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await request(url + path, {
    method: method as 'GET',
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, type: String(res.headers['content-type'] ?? ''), headers: res.headers, text };
}

/** The NDJSON lines of a streamed reply (which must end with a newline), parsed. */
export function ndjsonLines(text: string): Json[] {
  expect(text.endsWith('\n')).toBe(true);
  return text.trimEnd().split('\n').map((l) => JSON.parse(l) as Json);
}

/** Go's time.RFC3339Nano in UTC, as Ollama writes `created_at`. */
export const RFC3339_NANO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z$/;
