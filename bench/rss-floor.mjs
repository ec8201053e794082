// @ts-check
/**
 * The RSS floor of Parley's own libraries: a bare Node process that loads what `parley serve`
 * loads at start (Fastify, pino, Kysely over better-sqlite3 with a file open, undici, prom-client,
 * zod) and, as a second step, gpt-tokenizer (loaded by the first session turn that needs a
 * count), then idles. Compare with the minimal relay (node:http + undici) and with Parley's idle
 * RSS in bench/results/latest.md. Usage: node bench/rss-floor.mjs [--json]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'parley-rss-'));
const steps = {
  'node, empty': '',
  'node:http + undici (the minimal relay)': "await import('undici'); await import('node:http');",
  "+ Parley's libraries (fastify, pino, kysely, better-sqlite3 with a file, prom-client, zod)":
    "await import('undici'); const { default: Fastify } = await import('fastify'); const { pino } = await import('pino'); const { Kysely, SqliteDialect, sql } = await import('kysely'); const { default: S } = await import('better-sqlite3'); await import('prom-client').then((p) => p.collectDefaultMetrics()); await import('zod');" +
    ` const db = new Kysely({ dialect: new SqliteDialect({ database: new S(${JSON.stringify(join(dir, 'f.db'))}) }) }); await sql\`select 1\`.execute(db); const app = Fastify({ loggerInstance: pino({}, pino.destination({ dest: 2, sync: false })) }); app.get('/', async () => 'ok'); await app.listen({ port: 0, host: '127.0.0.1' });`,
};
steps['+ gpt-tokenizer (first session turn)'] = steps["+ Parley's libraries (fastify, pino, kysely, better-sqlite3 with a file, prom-client, zod)"] + " const { countTokens } = await import('gpt-tokenizer'); countTokens('hello world');";
const rows = [];
for (const [name, code] of Object.entries(steps)) {
  const script = `${code} await new Promise((r) => setTimeout(r, 1000)); globalThis.gc?.(); await new Promise((r) => setTimeout(r, 200)); const m = /VmRSS:\\s+(\\d+)/.exec((await import('node:fs')).readFileSync('/proc/self/status', 'utf8')); console.log(m[1]); process.exit(0);`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { cwd: process.cwd(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
  rows.push([name, Number(r.stdout.trim()) / 1024]);
}
rmSync(dir, { recursive: true, force: true });
if (process.argv.includes('--json')) console.log(JSON.stringify(Object.fromEntries(rows)));
else for (const [name, mb] of rows) console.log(`${mb.toFixed(1).padStart(7)} MB  ${name}`);
