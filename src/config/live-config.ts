import { ParleyError } from '../errors/parley-error.js';
import { configSchema, type ParleyConfig } from './schema.js';

/**
 * Settings that may change while Parley runs (PATCH /admin/config), as dotted paths; a path below
 * one of them (e.g. `users.tiers.free.tokensPerDay`) is allowed too. Everything else needs a restart.
 */
export const RUNTIME_SETTINGS = [
  'logLevel',
  'queue.slotsPerUpstream',
  'queue.switchMaxWaitMs',
  'users.tiers',
  'users.defaultTier',
  'users.defaultReplyTokens',
  'models.defaultKeepAlive',
  'models.maxLoadedBytes',
] as const;

/** One accepted change: what was set, from what, to what. */
export interface ConfigChange {
  path: string;
  from: unknown;
  to: unknown;
}

/**
 * The configuration as it is now. Starts as the loaded config; `update` validates a whole set of
 * changes against the one zod schema and applies all or none, then tells the listeners (which make
 * the change effective at once, e.g. the queues' slot counts).
 */
export class LiveConfig {
  private value: ParleyConfig;
  private readonly listeners: Array<(next: ParleyConfig, prev: ParleyConfig) => void> = [];

  constructor(initial: ParleyConfig) {
    this.value = initial;
  }

  /** The current, frozen configuration. Read it at use, not once. */
  get current(): ParleyConfig {
    return this.value;
  }

  onChange(listener: (next: ParleyConfig, prev: ParleyConfig) => void): void {
    this.listeners.push(listener);
  }

  /** The runtime-changeable settings and their values now. */
  runtimeView(): Record<string, unknown> {
    return Object.fromEntries(RUNTIME_SETTINGS.map((p) => [p, getPath(this.value, p)]));
  }

  /**
   * Applies `changes` (dotted path → value) all at once.
   * @throws ParleyError PARLEY_ERR_REQUEST_INVALID naming the first bad field (not changeable at run
   *   time, or invalid by the schema); nothing changes then.
   */
  update(changes: Record<string, unknown>): ConfigChange[] {
    const entries = Object.entries(changes);
    if (entries.length === 0) throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', 'invalid body: give at least one setting, e.g. {"queue.slotsPerUpstream":2}');
    const draft = structuredClone(this.value) as Record<string, unknown>;
    for (const [path, value] of entries) {
      if (!RUNTIME_SETTINGS.some((s) => path === s || path.startsWith(`${s}.`))) {
        throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid setting ${path}: not changeable at run time (changeable: ${RUNTIME_SETTINGS.join(', ')})`);
      }
      setPath(draft, path, value);
    }
    const parsed = configSchema.safeParse(draft);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ParleyError('PARLEY_ERR_REQUEST_INVALID', `invalid setting ${issue.path.join('.')}: ${issue.message}`);
    }
    const prev = this.value;
    const applied = entries.map(([path]) => ({ path, from: getPath(prev, path), to: getPath(parsed.data, path) }));
    this.value = deepFreeze(parsed.data);
    for (const l of this.listeners) l(this.value, prev);
    return applied;
  }
}

function getPath(o: unknown, path: string): unknown {
  let node = o;
  for (const p of path.split('.')) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[p] : undefined;
  return node;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof node[p] !== 'object' || node[p] === null) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
