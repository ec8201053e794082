import type { Database } from '../storage/database.js';

/** One admin action: who, what, when, and how it ended. */
export interface AuditEntry {
  id: number;
  /** ISO time. */
  at: string;
  /** `admin-token`, `key:<id>`, or `unauthenticated` / `forbidden:key:<id>` for refused attempts. */
  actor: string;
  /** Method and route, e.g. `POST /admin/keys`. */
  action: string;
  /** What it acted on (key id, request id, model, setting), or null. */
  target: string | null;
  status: number;
  /** Details (never a key), e.g. `{"tier":"premium"}`. */
  details: Record<string, unknown> | null;
}

/** The admin audit log (`admin_audit`) and session owners (`session_owners`), migration 0004_users. */
export class AuditStore {
  constructor(private readonly database: Database) {}

  async append(e: Omit<AuditEntry, 'id'>): Promise<void> {
    await this.database.db
      .insertInto('admin_audit')
      .values({ at: e.at, actor: e.actor, action: e.action, target: e.target, status: e.status, details: e.details ? JSON.stringify(e.details) : null })
      .execute();
  }

  /** Latest entries first; `limit` 1-1000. */
  async list(limit = 100): Promise<AuditEntry[]> {
    const rows = await this.database.db.selectFrom('admin_audit').selectAll().orderBy('id', 'desc').limit(Math.min(Math.max(1, limit), 1000)).execute();
    return rows.map((r) => ({ id: Number(r.id), at: r.at, actor: r.actor, action: r.action, target: r.target, status: Number(r.status), details: r.details ? (JSON.parse(r.details) as Record<string, unknown>) : null }));
  }

  /** Records that `keyId` used a session (first user wins; later calls change nothing). */
  async ownSession(sessionId: string, keyId: string, at: string): Promise<void> {
    await this.database.db.insertInto('session_owners').values({ session_id: sessionId, key_id: keyId, created_at: at }).onConflict((oc) => oc.column('session_id').doNothing()).execute();
  }

  /** Sessions first used with `keyId`, oldest first. */
  async sessionsOf(keyId: string): Promise<Array<{ sessionId: string; createdAt: string }>> {
    const rows = await this.database.db.selectFrom('session_owners').selectAll().where('key_id', '=', keyId).orderBy('created_at').execute();
    return rows.map((r) => ({ sessionId: r.session_id, createdAt: r.created_at }));
  }

  async ownerOf(sessionId: string): Promise<string | undefined> {
    const row = await this.database.db.selectFrom('session_owners').select('key_id').where('session_id', '=', sessionId).executeTakeFirst();
    return row?.key_id;
  }
}
