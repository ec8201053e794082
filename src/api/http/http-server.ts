import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { accessLoggerOf, type Logger } from '../../observability/logger.js';
import { ParleyError, isParleyError } from '../../errors/parley-error.js';
import { toOllamaWire } from '../../errors/to-wire.js';
import { HttpClientStream, type ClientStream } from '../../chat/client-stream.js';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Methods registered per path, so an unknown method on a known path is 405 as in Ollama's router. */
export const knownRoutes = new Map<string, Set<string>>();

export interface HttpServerOptions {
  logger: Logger;
  bodyLimitBytes: number;
}

/**
 * One access-log line per request, written when the response finished: `reqId` (from the request's
 * child logger), method, url, status and duration. Fastify's default writes two (`incoming request`
 * with host and client address, then `request completed`), which under load was the largest part
 * of Parley's log-writing cost (bench/results/latest.md). Errors keep Fastify's `request errored`.
 */
class AccessLog extends LogController {
  constructor(private readonly access: Logger) {
    super();
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    this.access.info({ reqId: request.id, method: request.method, url: request.url, statusCode: reply.raw.statusCode, responseTime: Math.round(reply.elapsedTime * 10) / 10 }, 'request completed');
  }
}

/**
 * Fastify configured to behave like Ollama's gin router where clients notice: bodies are read as
 * bytes whatever their Content-Type (curl -d sends form-urlencoded) and parsed by the routes with
 * Go's error texts; 404 `404 page not found` and 405 `405 method not allowed` as plain text; a
 * trailing slash redirects. Every response carries `X-Request-Id` (the client's, if it sent a
 * well-formed one, else a new UUID).
 */
export function createHttpServer(opts: HttpServerOptions): FastifyInstance {
  const app = Fastify({
    // pino's Logger is Fastify's logger; only the generic parameters differ.
    loggerInstance: opts.logger as FastifyBaseLogger,
    logController: new AccessLog(accessLoggerOf(opts.logger)),
    bodyLimit: opts.bodyLimitBytes,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // Path parameters such as a session id (up to 128 characters, each up to 3 when
    // percent-encoded) must fit; find-my-way answers 414 above its default of 100.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: 400 },
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.addHook('onRequest', async (request, reply) => {
    reply.header('X-Request-Id', request.id);
  });
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const set = knownRoutes.get(route.url) ?? new Set<string>();
    for (const m of methods) set.add(m);
    knownRoutes.set(route.url, set);
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    const e = mapFastifyError(error, opts.bodyLimitBytes);
    if (e.status >= 500) request.log.error({ err: error, code: e.code }, 'request.error');
    else request.log.info({ code: e.code, msg: e.message }, 'request.rejected');
    const wire = toOllamaWire(e);
    void reply.status(wire.status).headers(wire.headers).type('application/json; charset=utf-8').send(wire.body);
  });

  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '/';
    const methods = matchKnown(path);
    if (methods) {
      void reply.status(405).type('text/plain').send('405 method not allowed');
      return;
    }
    if (path.length > 1 && path.endsWith('/') && matchKnown(path.replace(/\/+$/, ''))) {
      const status = request.method === 'GET' || request.method === 'HEAD' ? 301 : 307;
      void reply.redirect(path.replace(/\/+$/, '') + request.url.slice(path.length), status);
      return;
    }
    void reply.status(404).type('text/plain').send('404 page not found');
  });
  return app;
}

function matchKnown(path: string): Set<string> | undefined {
  const exact = knownRoutes.get(path);
  if (exact) return exact;
  for (const [pattern, methods] of knownRoutes) {
    if (!pattern.includes(':')) continue;
    const re = new RegExp('^' + pattern.replace(/:[^/]+/g, '[^/]+') + '$');
    if (re.test(path)) return methods;
  }
  return undefined;
}

function mapFastifyError(error: unknown, bodyLimitBytes: number): ParleyError {
  if (isParleyError(error)) return error;
  const code = (error as { code?: string }).code;
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new ParleyError('PARLEY_ERR_REQUEST_BODY_TOO_LARGE', `request body too large: the limit is ${bodyLimitBytes} bytes (PARLEY_BODY_LIMIT_BYTES)`);
  }
  if (code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') return new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid Content-Length');
  const status = (error as { statusCode?: number }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ParleyError('PARLEY_ERR_REQUEST_INVALID', (error as Error).message, { status });
  }
  return new ParleyError('PARLEY_ERR_INTERNAL', 'internal error', { cause: error });
}

/**
 * Takes over the raw response for streaming and returns the ClientStream plus an AbortSignal that
 * fires when the client goes away before the response finished (queue exit, upstream abort).
 */
export function takeOver(request: FastifyRequest, reply: FastifyReply, headers: Record<string, string> = {}): { client: ClientStream; signal: AbortSignal } {
  reply.hijack();
  const ac = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) ac.abort(new ParleyError('PARLEY_ERR_QUEUE_CANCELLED', 'request canceled'));
  });
  const client = new HttpClientStream(res, { 'X-Request-Id': request.id, ...headers });
  return { client, signal: ac.signal };
}
