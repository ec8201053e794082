import { readFileSync } from 'node:fs';
import { configSchema, SETTINGS, type ConfigInput, type ParleyConfig, type SettingSpec } from './schema.js';

/** Thrown when configuration is invalid; `message` is one line naming the setting and its source. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigSources {
  /** Flag values keyed by flag name without dashes as commander gives them (`host`, `upstream`, …). */
  flags?: Record<string, unknown>;
  /** Environment, normally `process.env`. */
  env?: Record<string, string | undefined>;
  /** Path of a JSON config file; falls back to `PARLEY_CONFIG` in `env`. */
  configFile?: string;
  /** Values set by code (tests, demo); applied after the file and before env. */
  overrides?: ConfigInput;
}

/**
 * Builds the validated, frozen configuration.
 * @throws ConfigError naming the first bad setting, e.g. `invalid setting PARLEY_PORT (port): …`.
 */
export function loadConfig(sources: ConfigSources = {}): ParleyConfig {
  const env = sources.env ?? {};
  let merged: Record<string, unknown> = {};
  const origin = new Map<string, string>();

  const file = sources.configFile ?? env.PARLEY_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`invalid config file ${file}: ${(e as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`invalid config file ${file}: must hold a JSON object`);
    merged = deepMerge(merged, parsed as Record<string, unknown>);
    markOrigins(parsed as Record<string, unknown>, '', `config file ${file}`, origin);
  }
  if (sources.overrides) merged = deepMerge(merged, sources.overrides as Record<string, unknown>);

  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw === undefined || raw === '') continue;
    setPath(merged, s.path, coerce(s, raw, s.env));
    origin.set(s.path, s.env);
  }
  for (const s of SETTINGS) {
    if (!s.flag) continue;
    const key = flagKey(s.flag);
    const raw = sources.flags?.[key];
    if (raw === undefined) continue;
    const value = Array.isArray(raw) ? raw.flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean) : coerce(s, String(raw), s.flag);
    setPath(merged, s.path, value);
    origin.set(s.path, s.flag);
  }

  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.filter((p) => typeof p !== 'number').join('.');
    const spec = SETTINGS.find((s) => s.path === path);
    const where = origin.get(path) ?? spec?.env ?? 'config';
    throw new ConfigError(`invalid setting ${path || '(root)'} (from ${where}): ${issue.message}`);
  }
  return deepFreeze(result.data);
}

function flagKey(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function coerce(s: SettingSpec, raw: string, source: string): unknown {
  if (s.kind === 'list') return raw.split(',').map((v) => v.trim()).filter(Boolean);
  if (s.kind === 'bool') {
    const v = raw.trim().toLowerCase();
    if (v === 'true' || v === '1') return true;
    if (v === 'false' || v === '0') return false;
    throw new ConfigError(`invalid setting ${s.path} (from ${source}): expected true or false, got "${raw}"`);
  }
  if (s.kind === 'int') {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`invalid setting ${s.path} (from ${source}): expected a whole number, got "${raw}"`);
    return Number(raw.trim());
  }
  return raw;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const p of parts.slice(0, -1)) {
    const next = node[p];
    if (typeof next !== 'object' || next === null) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

function markOrigins(obj: Record<string, unknown>, prefix: string, source: string, origin: Map<string, string>): void {
  for (const [k, v] of Object.entries(obj)) {
    const path = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) markOrigins(v as Record<string, unknown>, path, source, origin);
    else origin.set(path, source);
  }
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      typeof v === 'object' && v !== null && !Array.isArray(v) && typeof prev === 'object' && prev !== null && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
