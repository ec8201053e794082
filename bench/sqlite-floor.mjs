// @ts-nocheck
/**
 * The floor of Parley's per-turn persistence on this machine: the statements one session turn runs
 * (traced from Parley with better-sqlite3's `verbose`: the ownership check, the history version,
 * the context read, then beginTurn + completeTurn: in two transactions for a streamed reply, in
 * one for a stream:false reply since 10ed5ca), prepared once and run straight through
 * better-sqlite3 (no Kysely, no promises) on a file migrated by Parley, WAL + synchronous=NORMAL
 * as Parley opens it; and the least a turn must write (one transaction, no reads).
 * CPU per turn from process.cpuUsage. Usage: taskset -c 0 node bench/sqlite-floor.mjs [--json]
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
const { openDatabase } = await import(new URL('../dist/storage/database.js', import.meta.url).href);
const { migrateToLatest } = await import(new URL('../dist/storage/migrations.js', import.meta.url).href);
const dir = mkdtempSync(join(tmpdir(), 'parley-floor-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, 'floor.db');
const migrated = await openDatabase(file);
await migrateToLatest(migrated);
await migrated.close();
const db = new Database(file);
db.pragma('journal_mode = WAL'); db.pragma('synchronous = NORMAL'); db.pragma('foreign_keys = ON');
const q = {
  ctx: db.prepare('select * from session_context where session_id = ?'),
  begin: db.prepare('begin'), commit: db.prepare('commit'),
  sess: db.prepare('select conversation_id, status from sessions where id = ?'),
  insConv: db.prepare('insert into conversations (id, model, created_at, updated_at) values (?, ?, ?, ?)'),
  insSess: db.prepare("insert into sessions (id, conversation_id, status, created_at, updated_at, last_active_at) values (?, ?, 'active', ?, ?, ?) on conflict (id) do nothing returning id"),
  maxSeq: db.prepare('select max(seq) as seq from messages where conversation_id = ?'),
  ins: db.prepare("insert into messages (conversation_id, model, created_at, updated_at, role, content, seq, status) values (?, 'llama3.2', ?, ?, ?, ?, ?, ?), (?, 'llama3.2', ?, ?, ?, ?, ?, ?) returning id, seq"),
  updConv: db.prepare("update conversations set message_count = message_count + 2, model = 'llama3.2', updated_at = ?, archived_at = null where id = ?"),
};
const n = {
  access: db.prepare('select sessions.id is not null as found, conversations.deleted_at, session_owners.key_id from (select cast(? as text) as id) as asked left join sessions on sessions.id = asked.id left join conversations on conversations.id = sessions.conversation_id left join session_owners on session_owners.session_id = asked.id'),
  ver: db.prepare('select conversations.id, conversations.message_count, conversations.updated_at from sessions inner join conversations on conversations.id = sessions.conversation_id where sessions.id = ?'),
  beginImm: db.prepare('begin immediate'),
  act: db.prepare("update sessions set status = 'active', archived_at = null, updated_at = ?, last_active_at = ? where id = ? returning conversation_id"),
  ins: db.prepare("with top as (select coalesce(max(seq), 0) as s from messages where conversation_id = ?) insert into messages (conversation_id, model, created_at, updated_at, role, content, thinking, images, tool_calls, tool_name, tool_call_id, seq, status) select ?, 'llama3.2', ?, ?, 'user', ?, null, null, null, null, null, top.s + 1, 'complete' from top union all select ?, 'llama3.2', ?, ?, 'assistant', '', null, null, null, null, null, top.s + 2, 'incomplete' from top returning id, seq"),
  cnt: db.prepare("update conversations set message_count = message_count + 2, model = 'llama3.2', updated_at = ?, archived_at = null where id = ? returning message_count"),
  done: db.prepare("update messages set status = 'complete', content = ?, thinking = null, tool_calls = null, done_reason = 'stop', prompt_tokens = 10, completion_tokens = 16, total_duration_ns = 1, load_duration_ns = 1, prompt_eval_duration_ns = 1, eval_duration_ns = 1, updated_at = ?, tokens = 20, tokens_exact = 1 where id = ? and role = 'assistant' returning conversation_id"),
  tok: db.prepare('update messages set tokens = case id when ? then cast(? as integer) end, tokens_exact = case id when ? then cast(1 as integer) end where conversation_id = ? and id in (?)'),
  conv: db.prepare('update conversations set updated_at = ?, title = coalesce(title, ?) where id = ?'),
};
/** The turn as Parley runs it now: three reads, then the writes in two commits (streamed) or one (stream:false). */
function parleyTurn(sid, commits) {
  const now = new Date().toISOString();
  n.access.get(sid); n.ver.get(sid); q.ctx.get(sid);
  n.beginImm.run();
  let c = n.act.get(now, now, sid)?.conversation_id;
  if (!c) { c = randomUUID(); q.insConv.run(c, 'llama3.2', now, now); q.insSess.get(sid, c, now, now, now); }
  const rows = n.ins.all(c, c, now, now, 'hello 3', c, now, now);
  n.cnt.get(now, c);
  if (commits === 2) { q.commit.run(); n.beginImm.run(); }
  const [u, a] = rows.sort((x, y) => x.seq - y.seq);
  n.done.get('Small step slow moon stone quiet river light over the hill', now, a.id);
  n.tok.run(u.id, 6, u.id, c, u.id);
  n.conv.run(now, 'hello 3', c);
  q.commit.run();
}
function minimal(sid) {
  // What one turn must write at the least: both messages and the conversation's counters, one commit.
  const now = new Date().toISOString();
  q.begin.run();
  let s = q.sess.get(sid);
  if (!s) { const cid = randomUUID(); q.insConv.run(cid, 'llama3.2', now, now); q.insSess.get(sid, cid, now, now, now); s = { conversation_id: cid }; }
  const top = q.maxSeq.get(s.conversation_id).seq ?? 0;
  q.ins.all(s.conversation_id, now, now, 'user', 'hello 3', top + 1, 'complete', s.conversation_id, now, now, 'assistant', 'Small step slow moon stone quiet river light over the hill', top + 2, 'complete');
  q.updConv.run(now, s.conversation_id);
  q.commit.run();
}
const { cpuUsage } = process;
const variants = [
  ['parley turn, streamed (3 reads, 2 commits)', (sid) => parleyTurn(sid, 2)],
  ['parley turn, stream:false (3 reads, 1 commit)', (sid) => parleyTurn(sid, 1)],
  ['minimal turn (1 commit)', minimal],
];
/** @type {Record<string, number[]>} */
const cpuUs = {};
for (const [name, fn] of [...variants, ...variants]) {
  const N = 4000;
  for (let i = 0; i < 300; i++) fn(`w${name.length}-${i % 60}`);
  const c0 = cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < N; i++) fn(`s${name.length}-${Math.floor(i / 5)}`); // 5 turns per session, as the benchmark
  const c = cpuUsage(c0); const t = performance.now() - t0;
  (cpuUs[name] ??= []).push((c.user + c.system) / N);
  if (!process.argv.includes('--json')) console.log(`${name}: ${((c.user + c.system) / N).toFixed(0)} µs CPU per turn (${(t * 1000 / N).toFixed(0)} µs wall)`);
}
// The lower of the two runs of each: the floor.
if (process.argv.includes('--json')) console.log(JSON.stringify(Object.fromEntries(Object.entries(cpuUs).map(([k, v]) => [k, Math.min(...v)]))));
