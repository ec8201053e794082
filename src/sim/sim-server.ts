import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { SimContext } from './sim-context.js';
import { handleControl } from './sim-control.js';
import { CORS_ALLOW_HEADERS, hostAllowed, isLoopbackBind, originAllowed } from './sim-guard.js';
import { bindStruct, parseGoJson } from './sim-json.js';
import { matchRoute } from './sim-routes.js';
import type { RecordedRequest, SimFaults, SimOptions, SimRuntimeOptions, SimStats, Simulator } from './sim-types.js';
import { Exchange } from './sim-wire.js';

/**
 * The simulator's HTTP server (node:http, no framework): records every request, applies the
 * connection faults and Ollama's Host/CORS guards, routes like gin (404/405 plain text, trailing
 * slash redirects), binds JSON bodies, and serves the `/_sim/*` control endpoints.
 */

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', () => resolve(undefined));
    req.once('close', () => {
      if (!req.complete) resolve(undefined);
    });
  });
}

class SimServer implements Simulator {
  readonly ctx: SimContext;
  readonly requests: RecordedRequest[] = [];
  private nextId = 1;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly live = new Set<Exchange>();
  private readonly host: string;
  private boundPort: number;
  private readonly checkHost: boolean;
  private readonly maxRecorded: number;

  constructor(o: SimOptions) {
    this.ctx = new SimContext(o);
    this.host = o.host ?? '127.0.0.1';
    this.boundPort = o.port ?? 0;
    this.checkHost = (o.checkHost ?? true) && isLoopbackBind(this.host);
    this.maxRecorded = Math.max(1, o.maxRecordedRequests ?? 50_000);
    this.server = createServer({ requestTimeout: 0, noDelay: true }, (req, res) => void this.onRequest(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host === '::' ? '::1' : this.host;
    return `http://${h.includes(':') ? `[${h}]` : h}:${this.boundPort}`;
  }

  get maxConcurrent(): number {
    return this.ctx.slots.maxConcurrent;
  }

  get active(): number {
    return this.ctx.slots.active;
  }

  get waiting(): number {
    return this.ctx.slots.waiting;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.boundPort, this.host, () => {
        this.server.off('error', reject);
        const a = this.server.address();
        if (a && typeof a === 'object') this.boundPort = a.port;
        resolve();
      });
    });
  }

  stats(): SimStats {
    return { active: this.active, waiting: this.waiting, maxConcurrent: this.maxConcurrent, loaded: this.loadedModels() };
  }

  setFaults(f: SimFaults): void {
    this.ctx.faults = { ...f };
  }

  setOptions(o: SimRuntimeOptions): void {
    this.ctx.update(o);
  }

  reset(): void {
    this.requests.length = 0;
    this.nextId = 1;
    this.ctx.slots.maxConcurrent = this.ctx.slots.active;
  }

  loadedModels(): string[] {
    return this.ctx.loaded.names();
  }

  private async stop(): Promise<void> {
    for (const ex of this.live) ex.serverClosing();
    this.ctx.slots.dropWaiters();
    this.ctx.loaded.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    if (this.server.listening) await closed;
  }

  crash(): Promise<void> {
    return this.stop();
  }

  restart(): Promise<void> {
    return this.listen();
  }

  close(): Promise<void> {
    return this.stop();
  }

  async waitFor(pred: (r: RecordedRequest[]) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.requests)) {
      if (Date.now() > deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/_sim/')) return handleControl(this, req, res, path, readBody);
    const faults = this.ctx.faults;
    if (faults.refuseConnections) {
      req.socket.destroy();
      return;
    }
    const record: RecordedRequest = {
      id: this.nextId++,
      method: req.method ?? 'GET',
      path,
      headers: { ...req.headers },
      body: undefined,
      receivedAt: Date.now(),
      aborted: false,
    };
    this.requests.push(record);
    if (this.requests.length > this.maxRecorded) this.requests.splice(0, this.requests.length - Math.floor(this.maxRecorded * 0.9));
    const ex = new Exchange(req, res, record);
    this.live.add(ex);
    res.once('close', () => this.live.delete(ex));
    if (faults.hang) {
      const text = await readBody(req);
      const parsed = text ? parseGoJson(text) : undefined;
      if (parsed?.ok) record.body = parsed.value;
      return;
    }
    if (this.checkHost && !hostAllowed(req.headers.host)) {
      req.resume();
      return ex.empty(403);
    }
    const origin = req.headers.origin;
    if (typeof origin === 'string' && !sameOrigin(origin, req.headers.host)) {
      if (!originAllowed(origin)) {
        req.resume();
        return ex.empty(403);
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      if (req.method === 'OPTIONS') {
        res.setHeader('Access-Control-Allow-Methods', 'GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS');
        res.setHeader('Access-Control-Allow-Headers', CORS_ALLOW_HEADERS);
        req.resume();
        return ex.empty(204);
      }
    }
    await this.route(ex, req, path, record);
  }

  private async route(ex: Exchange, req: IncomingMessage, path: string, record: RecordedRequest): Promise<void> {
    const found = matchRoute(path);
    if (!found) {
      req.resume();
      const bare = path.length > 1 && path.endsWith('/') ? path.replace(/\/+$/, '') : undefined;
      if (bare && matchRoute(bare)) {
        const code = req.method === 'GET' ? 301 : 307;
        ex.res.setHeader('Location', bare);
        const text = code === 301 ? 'Moved Permanently' : 'Temporary Redirect';
        return ex.send(code, 'text/html; charset=utf-8', req.method === 'GET' ? `<a href="${bare}">${text}</a>.\n\n` : '');
      }
      return ex.send(404, 'text/plain', '404 page not found');
    }
    const handler = found.route.methods[req.method ?? 'GET'];
    if (!handler) {
      req.resume();
      return ex.send(405, 'text/plain', '405 method not allowed');
    }
    if (found.route.style) ex.errorStyle = found.route.style;
    let body: Record<string, unknown> = {};
    if (handler.struct) {
      const text = await readBody(req);
      if (text === undefined) return;
      const parsed = parseGoJson(text);
      if (!parsed.ok) {
        const msg = parsed.empty ? (ex.errorStyle === 'openai' ? 'EOF' : 'missing request body') : parsed.error;
        return ex.fail(400, msg);
      }
      record.body = parsed.value;
      const bound = bindStruct(handler.struct, parsed.value);
      if ('error' in bound) return ex.fail(400, bound.error);
      body = bound.body;
    }
    try {
      await handler.run(ex, this.ctx, body, found.param);
    } catch (e) {
      if (!ex.headersSent) ex.fail(500, e instanceof Error ? e.message : String(e));
      else ex.destroy();
    }
  }
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return new URL(origin).host.toLowerCase() === (host ?? '').toLowerCase();
  } catch {
    return false;
  }
}

/**
 * Starts an Ollama simulator (see SimOptions for defaults) and resolves once it listens.
 * Close it with `sim.close()`.
 */
export async function startSimulator(options: SimOptions = {}): Promise<Simulator> {
  const sim = new SimServer(options);
  await sim.listen();
  return sim;
}

export type { SimServer };
