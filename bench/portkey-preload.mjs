// @ts-check
/**
 * Preloaded into Portkey's gateway (`node --import ./bench/portkey-preload.mjs …/start-server.js`).
 * 1. Portkey binds every interface and has no option to change it: force every listen onto 127.0.0.1.
 * 2. On Node 20 its streaming fails with `TypeError: immutable` (Portkey issues #1389, #1550): it
 *    sets headers on a `Response` that undici's fetch returned, whose headers are immutable. We wrap
 *    global fetch so the Response it returns carries mutable headers (same body stream, no copy).
 */
import net from 'node:net';

const listen = net.Server.prototype.listen;
/** @type {any} */ (net.Server.prototype).listen = function (/** @type {any[]} */ ...args) {
  if (typeof args[0] === 'object' && args[0] !== null) args[0] = { ...args[0], host: '127.0.0.1' };
  else if (typeof args[0] === 'number' || typeof args[0] === 'string') {
    const cb = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
    args = cb ? [Number(args[0]), '127.0.0.1', cb] : [Number(args[0]), '127.0.0.1'];
  }
  return listen.apply(this, /** @type {any} */ (args));
};

if (process.env.BENCH_PORTKEY_FIX_IMMUTABLE !== '0') {
  const realFetch = globalThis.fetch;
  globalThis.fetch = async function (input, init) {
    const res = await realFetch(input, init);
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers: new Headers(res.headers) });
  };
}
