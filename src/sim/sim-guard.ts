import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';

/**
 * Ollama's request guards (reference §6.5): the DNS-rebinding Host check applied while bound to
 * a loopback address, and the CORS origin allow-list (default OLLAMA_ORIGINS).
 */

function v4(addr: string): number[] | undefined {
  const p = addr.split('.').map(Number);
  return p.length === 4 && p.every((n) => Number.isInteger(n) && n >= 0 && n <= 255) ? p : undefined;
}

/** True for loopback, private or unspecified IPv4/IPv6 addresses (and IPv4-mapped ones). */
export function isLocalIp(addr: string): boolean {
  let a = addr.toLowerCase();
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7);
  const b = v4(a);
  if (b) {
    const [x = 0, y = 0] = b;
    return x === 127 || x === 10 || (x === 172 && y >= 16 && y <= 31) || (x === 192 && y === 168) || b.every((n) => n === 0);
  }
  if (isIP(a) === 6) {
    if (a === '::1' || a === '::') return true;
    return /^f[cd][0-9a-f]{0,2}:/.test(a);
  }
  return false;
}

function machineIps(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address.toLowerCase());
  return out;
}

/** True when the server's bind address is loopback, so the Host guard applies (as in Ollama). */
export function isLoopbackBind(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

/** Host header (with or without port) allowed by Ollama's allowedHostsMiddleware. */
export function hostAllowed(hostHeader: string | undefined): boolean {
  let host = (hostHeader ?? '').toLowerCase();
  const m = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (m) host = m[1] as string;
  else if (/^[^:]*:\d*$/.test(host)) host = host.slice(0, host.lastIndexOf(':'));
  if (isIP(host)) return isLocalIp(host) || machineIps().has(host);
  if (host === '' || host === 'localhost' || host === hostname().toLowerCase()) return true;
  return ['.localhost', '.local', '.internal'].some((tld) => host.endsWith(tld));
}

/** Origin allowed by Ollama's default OLLAMA_ORIGINS (localhost, 127.0.0.1, 0.0.0.0 on any port; app/file/tauri/vscode schemes). */
export function originAllowed(origin: string): boolean {
  if (/^https?:\/\/(localhost|127\.0\.0\.1|0\.0\.0\.0)(:\d+)?$/i.test(origin)) return true;
  return /^(app|file|tauri|vscode-webview|vscode-file):\/\//i.test(origin);
}

/** Headers CORS allows (Ollama's list). */
export const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout';
