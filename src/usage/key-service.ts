import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { ParleyError } from '../errors/parley-error.js';
import type { Database } from '../storage/database.js';
import { ApiKeyStore, type ApiKeyRecord } from './api-key-store.js';

export type { ApiKeyRecord } from './api-key-store.js';

/** Who is asking: resolved from `Authorization: Bearer <key>`; undefined = anonymous. */
export interface Caller {
  keyId: string;
  name: string;
  tier: string;
  admin: boolean;
  /** Visible prefix of the key (safe to log). */
  prefix: string;
}

/** A key as `create` returns it: the only time the secret exists outside the client. */
export interface CreatedKey extends ApiKeyRecord {
  key: string;
}

export interface KeyServiceOptions {
  /** Names of the tiers that exist now (validated on create / setTier). */
  tiers: () => readonly string[];
  defaultTier: () => string;
  now?: () => Date;
}

/** Key format: `pk_` + 8 hex (the visible prefix) + `_` + 32 random bytes base64url (256 bits). */
const KEY_SHAPE = /^pk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$/;

/** Resolved keys kept in memory at most (SQLite; see KeyService.lookup); the map is emptied when full. */
const RESOLVED_KEYS_MAX = 10_000;

/** SHA-256 (hex) of a key. Keys carry 256 random bits, so a fast hash is enough (no password hashing). */
export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * API keys: created (the key is shown once), listed, revoked, re-tiered, and resolved from a
 * bearer token. Stored hashed (SHA-256), never the key; the 11-character prefix tells keys apart.
 */
export class KeyService {
  private readonly store: ApiKeyStore;
  private readonly now: () => Date;
  private activeCount: number | undefined;
  private activeCountAt = 0;
  /** SQLite: keys resolved since `resolvedVersion` (null = no such key), by SHA-256. */
  private readonly resolved = new Map<string, ApiKeyRecord | null>();
  private resolvedVersion: number | undefined;

  constructor(private readonly database: Database, private readonly opts: KeyServiceOptions) {
    this.store = new ApiKeyStore(database);
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Creates a key. @param tier default `users.defaultTier`
   * @throws ParleyError PARLEY_ERR_REQUEST_INVALID naming `name` (1-100 characters) or `tier` (unknown)
   */
  async create(input: { name: unknown; tier?: unknown; admin?: unknown }): Promise<CreatedKey> {
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    if (name.length === 0 || name.length > 100) throw invalid('name', 'must be 1-100 characters');
    const tier = input.tier === undefined ? this.opts.defaultTier() : input.tier;
    this.checkTier(tier);
    if (input.admin !== undefined && typeof input.admin !== 'boolean') throw invalid('admin', 'must be true or false');
    const prefix = `pk_${randomBytes(4).toString('hex')}`;
    const key = `${prefix}_${randomBytes(32).toString('base64url')}`;
    const row = { id: randomUUID(), name, prefix, key_hash: hashKey(key), tier: tier as string, is_admin: input.admin === true ? 1 : 0, created_at: this.now().toISOString(), revoked_at: null };
    await this.store.insert(row);
    this.changed();
    return { id: row.id, name, prefix, tier: row.tier, admin: row.is_admin === 1, createdAt: row.created_at, revokedAt: null, key };
  }

  list(): Promise<ApiKeyRecord[]> {
    return this.store.list();
  }

  get(id: string): Promise<ApiKeyRecord | undefined> {
    return this.store.byId(id);
  }

  /** Revokes a key at once. @throws ParleyError PARLEY_ERR_ADMIN_NOT_FOUND for an unknown or already revoked id */
  async revoke(id: string): Promise<ApiKeyRecord> {
    const revoked = await this.store.revoke(id, this.now().toISOString());
    this.changed();
    if (!revoked) throw new ParleyError('PARLEY_ERR_ADMIN_NOT_FOUND', `no active key with id '${id}'`);
    return (await this.store.byId(id))!;
  }

  /** @throws ParleyError PARLEY_ERR_REQUEST_INVALID (`tier` unknown), PARLEY_ERR_ADMIN_NOT_FOUND (id) */
  async setTier(id: string, tier: unknown): Promise<ApiKeyRecord> {
    this.checkTier(tier);
    const updated = await this.store.setTier(id, tier as string);
    this.changed();
    if (!updated) throw new ParleyError('PARLEY_ERR_ADMIN_NOT_FOUND', `no key with id '${id}'`);
    return (await this.store.byId(id))!;
  }

  /**
   * The caller a bearer key belongs to.
   * @throws ParleyError PARLEY_ERR_AUTH_INVALID_KEY when the key is malformed, unknown or revoked
   */
  async resolve(key: string): Promise<Caller> {
    const record = KEY_SHAPE.test(key) ? await this.lookup(hashKey(key)) : undefined;
    if (!record || record.revokedAt !== null) throw new ParleyError('PARLEY_ERR_AUTH_INVALID_KEY', 'invalid or revoked API key');
    return { keyId: record.id, name: record.name, tier: record.tier, admin: record.admin, prefix: record.prefix };
  }

  /** Whether any active key exists (auth mode `auto`); cached for 1 s, reset by create/revoke here. */
  async hasActiveKeys(): Promise<boolean> {
    const t = Date.now();
    if (this.activeCount === undefined || t - this.activeCountAt > 1_000) {
      this.activeCount = await this.store.countActive();
      this.activeCountAt = t;
    }
    return this.activeCount > 0;
  }

  /**
   * The key with this hash. On SQLite a key once read is answered from memory for as long as
   * `PRAGMA data_version` is unchanged: a revoke by another process (the CLI, another Parley on
   * the same file) changes it, so it still takes effect at the next request; this process's own
   * writes clear the map (`changed`). On Postgres every request reads the row.
   */
  private async lookup(hash: string): Promise<ApiKeyRecord | undefined> {
    const version = this.database.dataVersion?.();
    if (version === undefined) return this.store.byHash(hash);
    if (version !== this.resolvedVersion || this.resolved.size >= RESOLVED_KEYS_MAX) {
      this.resolved.clear();
      this.resolvedVersion = version;
    }
    const hit = this.resolved.get(hash);
    if (hit !== undefined) return hit ?? undefined;
    const record = await this.store.byHash(hash);
    // A write that landed while this read ran would be missed: keep the row only if nothing changed.
    if (this.database.dataVersion?.() === version && this.resolvedVersion === version) this.resolved.set(hash, record ?? null);
    return record;
  }

  /** After this process wrote api_keys: forget what was resolved and counted. */
  private changed(): void {
    this.resolved.clear();
    this.resolvedVersion = undefined;
    this.activeCount = undefined;
  }

  private checkTier(tier: unknown): void {
    if (typeof tier !== 'string' || !this.opts.tiers().includes(tier)) throw invalid('tier', `must be one of ${this.opts.tiers().join(', ')}`);
  }
}

function invalid(field: string, rule: string): ParleyError {
  return new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid ${field}: ${rule}`);
}
