import type { FastifyInstance } from 'fastify';
import { ParleyError } from '../../errors/parley-error.js';
import type { ApiKeyRecord } from '../../usage/key-service.js';
import { adminBody, auditNote, sendJson, type AdminDeps } from './admin-context.js';

function keyView(k: ApiKeyRecord, usedToday?: number) {
  return { id: k.id, name: k.name, prefix: k.prefix, tier: k.tier, admin: k.admin, created_at: k.createdAt, revoked_at: k.revokedAt, ...(usedToday === undefined ? {} : { tokens_used_today: usedToday }) };
}

/**
 * Keys and tiers: GET /admin/keys, POST /admin/keys `{"name","tier"?,"admin"?}` (201, the key in
 * `key`, shown this once), PATCH /admin/keys/:id `{"tier"}`, DELETE /admin/keys/:id (revoke, at
 * once), GET /admin/tiers. Bad input is 400 naming the field, and changes nothing.
 */
export function registerAdminKeyRoutes(app: FastifyInstance, deps: AdminDeps): void {
  app.get('/admin/keys', async (_request, reply) => {
    const keys = await deps.keys.list();
    const rows = await Promise.all(keys.map(async (k) => keyView(k, k.revokedAt === null ? await deps.usage.budgets.usedToday(k.id) : undefined)));
    return sendJson(reply, 200, { keys: rows });
  });
  app.post('/admin/keys', async (request, reply) => {
    const body = adminBody(request);
    auditNote(request, null, { name: body.name ?? null, tier: body.tier ?? null, admin: body.admin ?? false });
    const created = await deps.keys.create({ name: body.name, tier: body.tier, admin: body.admin });
    auditNote(request, created.id, { name: created.name, tier: created.tier, admin: created.admin, prefix: created.prefix });
    return sendJson(reply, 201, { ...keyView(created), key: created.key });
  });
  app.patch('/admin/keys/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    const body = adminBody(request);
    auditNote(request, id, { tier: body.tier ?? null });
    if (body.tier === undefined) throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid tier: required');
    return sendJson(reply, 200, keyView(await deps.keys.setTier(id, body.tier)));
  });
  app.delete('/admin/keys/:id', async (request, reply) => {
    const { id } = request.params as { id: string };
    auditNote(request, id);
    return sendJson(reply, 200, keyView(await deps.keys.revoke(id)));
  });
  app.get('/admin/tiers', async (_request, reply) => {
    const users = deps.live.current.users;
    return sendJson(reply, 200, { default_tier: users.defaultTier, tiers: users.tiers });
  });
}
