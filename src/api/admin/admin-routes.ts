import type { FastifyInstance } from 'fastify';
import { adminActorOf } from '../http/auth.js';
import { auditNoteOf, type AdminDeps } from './admin-context.js';
import { registerAdminKeyRoutes } from './admin-key-routes.js';
import { registerAdminOpsRoutes } from './admin-ops-routes.js';
import { registerAdminQueueRoutes } from './admin-queue-routes.js';

export type { AdminDeps } from './admin-context.js';

/**
 * The admin API under /admin (docs/api.md "Users and admin"): queue, models, sessions, keys and
 * tiers, runtime configuration, usage and the audit log. Access is checked by the auth hook
 * (src/api/http/auth.ts): PARLEY_ADMIN_TOKEN or an admin key; 401 without, 403 for other keys.
 * Every /admin request, refused ones too, is written to the audit log (who, what, when, status)
 * before its response is sent.
 */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.addHook('onSend', async (request, reply, payload) => {
    const path = request.url.split('?')[0] ?? '/';
    if (path !== '/admin' && !path.startsWith('/admin/')) return payload;
    const status = reply.statusCode;
    const actor = adminActorOf(request) ?? (status === 403 ? 'forbidden' : 'unauthenticated');
    const route = request.routeOptions.url ?? path;
    const { target, details } = auditNoteOf(request);
    try {
      await deps.audit.append({ at: deps.now().toISOString(), actor, action: `${request.method} ${route}`, target, status, details });
    } catch (err) {
      deps.logger.error({ err, action: `${request.method} ${route}` }, 'admin.audit_failed');
    }
    if (status < 400 && request.method !== 'GET') deps.logger.info({ actor, action: `${request.method} ${route}`, target }, 'admin.action');
    return payload;
  });
  registerAdminQueueRoutes(app, deps);
  registerAdminKeyRoutes(app, deps);
  registerAdminOpsRoutes(app, deps);
}
