import { isParleyError } from '../errors/parley-error.js';
import type { Logger } from '../observability/logger.js';
import { isDeterministic } from '../resilience/response-cache.js';
import type { ClientStream } from './client-stream.js';
import type { ModelCall, ModelCallDeps } from './model-call-types.js';
import type { PreparedCall } from './prepare-call.js';

/** Normal operation: an identical deterministic request (no session) answered from the cache. */
export function answerFromCache(call: ModelCall, prep: PreparedCall, client: ClientStream, deps: Pick<ModelCallDeps, 'cache' | 'degraded' | 'metrics'>): boolean {
  const cache = deps.cache;
  if (!cache || cache.deterministicTtlMs === 0 || !prep.key || prep.session !== undefined || !deps.degraded) return false;
  if (!isDeterministic(prep.body)) return false;
  const hit = cache.store.get(prep.key, cache.deterministicTtlMs);
  deps.metrics?.cacheLookups.inc({ purpose: 'deterministic', result: hit ? 'hit' : 'miss' });
  if (!hit) return false;
  const a = deps.degraded.cachedAnswer({ endpoint: call.endpoint, model: call.model, stream: call.clientStream, firstTurn: prep.firstTurn, cached: hit });
  client.sendWhole(a.status, a.headers, a.body);
  return true;
}

/**
 * Degraded mode: no upstream could serve. Answers per `degraded.mode`, marked with
 * X-Parley-Degraded and `"degraded"` on every chunk; nothing is stored in the session.
 */
export function answerDegraded(call: ModelCall, prep: PreparedCall | undefined, client: ClientStream, cause: unknown, log: Logger, deps: Pick<ModelCallDeps, 'cache' | 'degraded' | 'metrics'>): void {
  const degraded = deps.degraded!;
  const cache = deps.cache;
  let cached;
  if (degraded.opts.mode === 'cache' && cache && prep?.key) {
    cached = cache.store.get(prep.key, cache.degradedTtlMs);
    deps.metrics?.cacheLookups.inc({ purpose: 'degraded', result: cached ? 'hit' : 'miss' });
  }
  const streaming = call.clientStream && (call.endpoint === 'chat' || call.endpoint === 'generate');
  const answer = degraded.answer({
    endpoint: call.endpoint,
    model: call.model,
    stream: streaming,
    firstTurn: prep?.firstTurn ?? true,
    cached,
    reason: isParleyError(cause) ? cause.message : undefined,
    ...(prep?.session !== undefined ? { extraFields: { session_id: prep.session } } : {}),
  });
  deps.metrics?.degradedResponses.inc({ mode: answer.mode, endpoint: call.endpoint });
  log.warn({ code: answer.mode === 'error' ? 'PARLEY_ERR_DEGRADED_UNAVAILABLE' : undefined, cause: isParleyError(cause) ? cause.code : undefined, err: cause, mode: answer.mode }, 'request.degraded');
  if (!client.started) {
    client.sendWhole(answer.status, answer.headers, answer.body);
  } else if (answer.status === 200 && streaming) {
    // Queue updates already started the response: the chunks still carry "degraded".
    client.end(answer.body);
  } else {
    client.end(answer.body + '\n');
  }
}

