import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';

/** A response read to the end, bytes untouched. */
export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body exactly as received. */
  bytes: Buffer;
  text: string;
}

export interface RawRequest {
  method?: string;
  headers?: Record<string, string>;
  /** A JSON value is serialised; a string, Buffer or Readable is sent as is. */
  body?: unknown;
}

/**
 * One request over plain node:http, so tests control every header (including `Host`) and see
 * the response's bytes, status and headers as a stock client would.
 */
export function raw(baseUrl: string, path: string, opts: RawRequest = {}): Promise<RawResponse> {
  const url = new URL(path, baseUrl);
  const body = opts.body;
  const isStream = typeof (body as Readable | undefined)?.pipe === 'function';
  const payload = body === undefined || isStream ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const headers: Record<string, string> = { ...(payload !== undefined && !opts.headers?.['content-type'] ? { 'content-type': 'application/json' } : {}), ...opts.headers };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, path: url.pathname + url.search, method: opts.method ?? (body === undefined ? 'GET' : 'POST'), headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, text: bytes.toString('utf8') });
        });
      },
    );
    req.on('error', reject);
    if (isStream) (body as Readable).pipe(req);
    else req.end(payload);
  });
}

/** The NDJSON lines of a body, parsed; asserts (throws) that every line ends with `\n`. */
export function ndjson(text: string): Array<Record<string, any>> {
  if (text !== '' && !text.endsWith('\n')) throw new Error(`NDJSON body does not end with a newline: ${JSON.stringify(text.slice(-80))}`);
  return text
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Record<string, any>);
}
