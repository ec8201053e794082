import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * Parley as a real child process (`node dist/cli.js …`), for what only a separate process can
 * show: `kill -9`, SIGTERM, exit codes, stderr. `npm run build` must have built dist/ first
 * (`npm test` does).
 *
 * The CLI prints no URL, so `startParley` picks a free port first (a listener on port 0, closed
 * again), hands it over as PARLEY_PORT and waits until `GET /` answers. If another process takes
 * the port in between, the child fails to bind and is started again on a new port.
 */

/** Absolute path of the built CLI. */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface ParleyProcessOptions {
  /** Upstream URLs (PARLEY_UPSTREAMS), e.g. the in-process simulator's `sim.url`. */
  upstreams: string[];
  /** SQLite file path or postgres:// URL (PARLEY_DATABASE_URL). */
  databaseUrl: string;
  /** Further PARLEY_* variables, e.g. `{ PARLEY_DRAIN_TIMEOUT_MS: '300' }`. */
  env?: Record<string, string>;
  /** How long to wait for `GET /` to answer. Default 10 s. */
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ParleyProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Every stdout line parsed as JSON (pino log lines); lines that are not JSON are skipped. */
  readonly logs: Array<Record<string, unknown>>;
  /** Raw stderr so far. */
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  /** Like `exited`, but rejects (with the last log lines) if the process is still running after `timeoutMs`. */
  exitWithin(timeoutMs: number): Promise<ExitStatus>;
  /** Sends a signal to this process (only this pid). */
  signal(sig: NodeJS.Signals): void;
  /** Resolves with the first log line whose `msg` equals `msg` (already written or still to come). */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** SIGKILL if still running, then waits for the exit. Idempotent; for `afterEach`. */
  kill(): Promise<ExitStatus>;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `node dist/cli.js serve` and resolves once it answers `GET /`. */
export async function startParley(opts: ParleyProcessOptions): Promise<ParleyProcess> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const proc = spawnParley(port, opts);
    try {
      await waitUntilReady(proc, opts.readyTimeoutMs ?? 10_000);
      return proc;
    } catch (e) {
      lastError = e;
      await proc.kill();
      if (!/EADDRINUSE/.test(proc.stderr() + JSON.stringify(proc.logs))) break;
    }
  }
  throw lastError;
}

function spawnParley(port: number, opts: ParleyProcessOptions): ParleyProcess {
  const child = spawn(process.execPath, [CLI_PATH, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      PARLEY_HOST: '127.0.0.1',
      PARLEY_PORT: String(port),
      PARLEY_DATABASE_URL: opts.databaseUrl,
      PARLEY_UPSTREAMS: opts.upstreams.join(','),
      PARLEY_LOG_LEVEL: 'info',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const logWaiters: Array<(line: Record<string, unknown>) => void> = [];
  let stderr = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    pending += text;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      logs.push(parsed);
      for (const w of [...logWaiters]) w(parsed);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<ExitStatus>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let exitStatus: ExitStatus | undefined;
  void exited.then((s) => (exitStatus = s));

  return {
    child,
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    stderr: () => stderr,
    exited,
    exitWithin(timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          const last = logs.slice(-8).map((l) => String(l.msg)).join(', ');
          reject(new Error(`Parley (pid ${child.pid}) still running ${timeoutMs} ms later; last log lines: ${last}; stderr: ${stderr}`));
        }, timeoutMs);
        void exited.then((s) => {
          clearTimeout(timer);
          resolve(s);
        });
      });
    },
    signal(sig) {
      if (exitStatus === undefined) child.kill(sig);
    },
    waitForLog(msg, timeoutMs = 5_000) {
      const seen = logs.find((l) => l.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          logWaiters.splice(logWaiters.indexOf(waiter), 1);
          reject(new Error(`no log line "${msg}" within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        const waiter = (line: Record<string, unknown>) => {
          if (line.msg !== msg) return;
          clearTimeout(timer);
          logWaiters.splice(logWaiters.indexOf(waiter), 1);
          resolve(line);
        };
        logWaiters.push(waiter);
        void exited.then(() => {
          if (!logWaiters.includes(waiter)) return;
          clearTimeout(timer);
          logWaiters.splice(logWaiters.indexOf(waiter), 1);
          reject(new Error(`Parley exited before logging "${msg}"; stderr: ${stderr}`));
        });
      });
    },
    async kill() {
      if (exitStatus === undefined) child.kill('SIGKILL');
      return exited;
    },
  };
}

async function waitUntilReady(proc: ParleyProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`Parley exited before it answered GET /: ${proc.stderr()}`);
    // A connection of its own each time, so no idle keep-alive connection is left behind.
    const answer = await requestOnNewConnection(proc.url, 'GET', '/');
    if ('status' in answer && answer.status === 200) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`Parley did not answer GET / within ${timeoutMs} ms; stderr: ${proc.stderr()}`);
}

/** What `requestOnNewConnection` got: a response, or the socket error code (e.g. ECONNREFUSED). */
export type RawAnswer = { status: number; body: string } | { error: string };

/**
 * One HTTP request on a connection of its own (no keep-alive pool), so the answer shows whether a
 * server accepts new connections. Never rejects; gives up after `timeoutMs` with `{error:'TIMEOUT'}`.
 */
export function requestOnNewConnection(baseUrl: string, method: string, path: string, body?: unknown, timeoutMs = 2_000): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = httpRequest(
      `${baseUrl}${path}`,
      { method, agent: false, headers: payload === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (t: string) => (text += t));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    req.end(payload);
  });
}

export interface CliResult extends ExitStatus {
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js <args>` to the end with only the given environment (plus PATH). */
export async function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 10_000): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, stdout, stderr };
}

/**
 * Reads an NDJSON response body chunk by chunk: `next()` gives the next parsed line, or undefined
 * when the stream ended; a connection cut mid-stream rejects.
 */
export function ndjsonReader(res: Response): { next(): Promise<Record<string, unknown> | undefined>; cancel(): Promise<void> } {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let done = false;
  return {
    async next() {
      for (;;) {
        const nl = buffer.indexOf('\n');
        if (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line.trim() !== '') return JSON.parse(line) as Record<string, unknown>;
          continue;
        }
        if (done) {
          const rest = buffer.trim();
          buffer = '';
          return rest ? (JSON.parse(rest) as Record<string, unknown>) : undefined;
        }
        const r = await reader.read();
        if (r.done) done = true;
        else buffer += decoder.decode(r.value, { stream: true });
      }
    },
    async cancel() {
      await reader.cancel().catch(() => undefined);
    },
  };
}

/** A stored message as `GET /api/sessions/:id` shows it (the fields these tests read). */
export interface StoredWireMessage {
  role: string;
  content: string;
  status: string;
  model: string | null;
  [k: string]: unknown;
}

/** `POST /api/chat` with a JSON body, as a client would send it. */
export function postChat(p: ParleyProcess, body: unknown): Promise<Response> {
  return fetch(`${p.url}/api/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

/** The stored messages of a session; fails the test unless the session exists (200). */
export async function storedMessages(p: ParleyProcess, sessionId: string): Promise<StoredWireMessage[]> {
  const res = await fetch(`${p.url}/api/sessions/${sessionId}`);
  if (res.status !== 200) throw new Error(`GET /api/sessions/${sessionId} answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { messages: StoredWireMessage[] }).messages;
}
