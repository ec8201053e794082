import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { Caller, KeyService } from '../../usage/key-service.js';

/** Who an /admin request acts as: `admin-token`, or `key:<id>` for an admin key. */
export type AdminActor = string;

export interface AuthOptions {
  keys: KeyService;
  /** `auto` | `off` | `required` (config `auth.mode`), read per request. */
  mode: () => 'auto' | 'off' | 'required';
  /** PARLEY_ADMIN_TOKEN; empty = none. */
  adminToken: () => string;
}

/** Paths anyone may call whatever the auth mode: liveness, health and metrics for probes. */
const OPEN_PATHS = new Set(['/', '/api/health', '/metrics']);

const callers = new WeakMap<FastifyRequest, Caller>();
const actors = new WeakMap<FastifyRequest, AdminActor>();

/** The caller resolved for a request; undefined = anonymous. */
export function callerOf(request: FastifyRequest): Caller | undefined {
  return callers.get(request);
}

/** The admin actor of an /admin request (set once it was let in). */
export function adminActorOf(request: FastifyRequest): AdminActor | undefined {
  return actors.get(request);
}

/** The bearer key of a request, or undefined. Accepts `Bearer` in any case. */
export function bearerOf(request: FastifyRequest): string | undefined {
  const h = request.headers.authorization;
  if (typeof h !== 'string') return undefined;
  const m = /^bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/**
 * Resolves the caller of every request (an onRequest hook) and guards /admin.
 * - `/admin/*`: PARLEY_ADMIN_TOKEN or an admin key, else 401 (none or invalid) / 403 (a valid
 *   non-admin key), whatever the mode.
 * - `off`: everyone is anonymous; Authorization is ignored (like Ollama).
 * - `required`, or `auto` once an active key exists: a valid key is needed (401 otherwise), except
 *   on `/`, `/api/health` and `/metrics`.
 * - `auto` without keys: anonymous, but a key that is sent must be valid.
 * Errors are Ollama's shape `{"error":"…"}` with `WWW-Authenticate: Bearer`. Keys are never logged.
 */
export function registerAuth(app: FastifyInstance, opts: AuthOptions): void {
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0] ?? '/';
    const token = bearerOf(request);
    if (path === '/admin' || path.startsWith('/admin/')) {
      actors.set(request, await resolveAdmin(token, opts));
      return;
    }
    const mode = opts.mode();
    if (mode === 'off' || OPEN_PATHS.has(path)) return;
    if (token !== undefined) {
      callers.set(request, await opts.keys.resolve(token).catch((e: unknown) => Promise.reject(withChallenge(e))));
      return;
    }
    if (mode === 'required' || (await opts.keys.hasActiveKeys())) {
      throw new ParleyError('PARLEY_ERR_AUTH_REQUIRED', 'unauthorized: an API key is required (Authorization: Bearer <key>)', { headers: { 'WWW-Authenticate': 'Bearer' } });
    }
  });
}

async function resolveAdmin(token: string | undefined, opts: AuthOptions): Promise<AdminActor> {
  if (token === undefined) throw new ParleyError('PARLEY_ERR_AUTH_REQUIRED', 'unauthorized: /admin needs PARLEY_ADMIN_TOKEN or an admin key (Authorization: Bearer …)', { headers: { 'WWW-Authenticate': 'Bearer' } });
  const adminToken = opts.adminToken();
  if (adminToken !== '' && sameSecret(token, adminToken)) return 'admin-token';
  let caller: Caller;
  try {
    caller = await opts.keys.resolve(token);
  } catch (e) {
    throw withChallenge(e);
  }
  if (!caller.admin) throw new ParleyError('PARLEY_ERR_AUTH_FORBIDDEN', `forbidden: key ${caller.prefix} is not an admin key`);
  return `key:${caller.keyId}`;
}

/** Constant-time comparison (of SHA-256 digests, so lengths never leak either). */
function sameSecret(a: string, b: string): boolean {
  const da = createHash('sha256').update(a).digest();
  const db = createHash('sha256').update(b).digest();
  return timingSafeEqual(da, db);
}

function withChallenge(e: unknown): unknown {
  if (e instanceof ParleyError && e.status === 401) return new ParleyError(e.code, e.message, { headers: { 'WWW-Authenticate': 'Bearer' } });
  return e;
}

/** True for loopback hosts (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
