import { jsonKind } from './sim-json.js';

/**
 * Values inside request bodies as Ollama reads them: `keep_alive` (api.Duration over Go's
 * time.ParseDuration), `think`, base64 `images`, and the type check of known `options` keys.
 */

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration, in milliseconds; throws Go's error text. */
export function parseGoDuration(orig: string): number {
  let s = orig;
  let neg = false;
  const q = JSON.stringify(orig);
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new Error(`time: invalid duration ${q}`);
  let total = 0;
  while (s !== '') {
    const m = /^(\d*)(\.(\d*))?/.exec(s);
    const whole = m?.[1] ?? '';
    const frac = m?.[3] ?? '';
    if (!m || (whole === '' && frac === '') || m[0] === '') throw new Error(`time: invalid duration ${q}`);
    s = s.slice(m[0].length);
    const u = /^[^\d.]*/.exec(s)?.[0] ?? '';
    if (u === '') throw new Error(`time: missing unit in duration ${q}`);
    const scale = UNITS[u];
    if (scale === undefined) throw new Error(`time: unknown unit ${JSON.stringify(u)} in duration ${q}`);
    s = s.slice(u.length);
    total += Number(`${whole || '0'}.${frac || '0'}`) * scale;
  }
  return neg ? -total : total;
}

/**
 * `keep_alive` as Ollama's api.Duration reads it: milliseconds, `Infinity` for negative (forever),
 * undefined when absent or null. Numbers are whole seconds (fraction dropped). Throws Go's text.
 */
export function parseKeepAlive(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return v < 0 ? Infinity : Math.trunc(v) * 1000;
  if (typeof v === 'string') {
    const ms = parseGoDuration(v);
    return ms < 0 ? Infinity : ms;
  }
  const t = typeof v === 'boolean' ? 'bool' : Array.isArray(v) ? '[]interface {}' : 'map[string]interface {}';
  throw new Error(`Unsupported type: '${t}'`);
}

/** `think`: true/false, a level string, or undefined when absent. Throws Ollama's 400 text. */
export function parseThink(v: unknown): boolean | string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && ['high', 'medium', 'low', 'max'].includes(v)) return v;
  throw new Error(`invalid think value: ${JSON.stringify(v)} (must be "high", "medium", "low", "max", true, or false)`);
}

/** Go's base64 check for `images`: the error text for the first bad string, if any. */
export function checkBase64(images: unknown): string | undefined {
  if (!Array.isArray(images)) return undefined;
  for (const img of images) {
    if (typeof img !== 'string') return 'json: cannot unmarshal ' + jsonKind(img) + ' into Go value of type api.ImageData';
    const bad = /[^A-Za-z0-9+/=\r\n]/.exec(img);
    if (bad) return `illegal base64 data at input byte ${bad.index}`;
  }
  return undefined;
}

const INT_OPTS = ['num_keep', 'seed', 'num_predict', 'top_k', 'repeat_last_n', 'num_ctx', 'num_batch', 'num_gpu', 'main_gpu', 'num_thread', 'draft_num_predict'];
const FLOAT_OPTS = ['top_p', 'min_p', 'typical_p', 'temperature', 'repeat_penalty', 'presence_penalty', 'frequency_penalty'];

/** Type check of known `options` keys (unknown keys are ignored, as in Ollama). */
export function checkOptions(options: unknown): string | undefined {
  if (options === undefined || options === null || typeof options !== 'object') return undefined;
  for (const [k, v] of Object.entries(options as Record<string, unknown>)) {
    if (v === null) continue;
    if (INT_OPTS.includes(k) && typeof v !== 'number') return `option "${k}" must be of type integer`;
    if (FLOAT_OPTS.includes(k) && typeof v !== 'number') return `option "${k}" must be of type float32`;
    if (k === 'use_mmap' && typeof v !== 'boolean') return `option "${k}" must be of type boolean`;
    if (k === 'stop') {
      if (!Array.isArray(v)) return `option "${k}" must be of type array`;
      if (v.some((x) => typeof x !== 'string')) return `option "${k}" must be of an array of strings`;
    }
  }
  return undefined;
}
