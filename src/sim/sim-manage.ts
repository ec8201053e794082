import { createHash } from 'node:crypto';
import type { SimContext } from './sim-context.js';
import { type CatalogModel, details, displayName, normalizeName, parseModelName, showBody, tagsEntry, toCatalogModel } from './sim-models.js';
import { type Exchange, NdjsonStream, goJson, localTime, sleep } from './sim-wire.js';

/**
 * Model management (reference §1.4, §4.1): tags, ps, show, pull, push, create, copy, delete and
 * blobs. Progress streams (pull, push, create) write one line per `tokenIntervalMs`; with
 * `stream:false` only the last object is returned (`Content-Type: application/json`, as Go's
 * waitForStream sets it), or the error with status 500 (400 for request errors).
 */

type Line = Record<string, unknown>;

function sha(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** Writes progress lines, then success or a mid-stream error. */
async function progress(ex: Exchange, ctx: SimContext, stream: boolean, lines: Line[], error?: string, onSuccess?: () => void): Promise<void> {
  if (!stream) {
    for (let i = 1; i < lines.length; i++) if (!(await sleep(ctx.settings.tokenIntervalMs, ex.signal))) return;
    if (error) return ex.send(500, 'application/json', goJson({ error }));
    onSuccess?.();
    return ex.send(200, 'application/json', goJson(lines[lines.length - 1] ?? { status: 'success' }));
  }
  const out = new NdjsonStream(ex);
  for (let i = 0; i < lines.length; i++) {
    if (i > 0 && !(await sleep(ctx.settings.tokenIntervalMs, ex.signal))) return;
    if (i === lines.length - 1 && !error) onSuccess?.();
    if (!(await out.line(lines[i]))) return;
  }
  if (error) return out.error(error);
  out.end();
}

function layers(name: string, size: number): { digest: string; total: number }[] {
  const small = [1_429, 7_711, 96];
  const big = Math.max(1, size - small.reduce((a, b) => a + b, 0));
  return [big, ...small].map((total, i) => ({ digest: sha(`layer:${name}:${i}`), total }));
}

function nameOf(body: Record<string, unknown>): string {
  const m = typeof body.model === 'string' ? body.model : '';
  return m || (typeof body.name === 'string' ? body.name : '');
}

/** GET|HEAD /api/tags. */
export function handleTags(ex: Exchange, ctx: SimContext): void {
  ex.json(200, { models: ctx.catalog.list().map(tagsEntry) });
}

/** GET /api/ps: loaded models, latest `expires_at` first. */
export function handlePs(ex: Exchange, ctx: SimContext): void {
  const models = ctx.loaded.list().map((e) => ({
    name: e.model.name,
    model: e.model.name,
    size: e.model.sizeBytes,
    digest: e.model.digest,
    details: details(e.model),
    expires_at: localTime(e.expiresAtMs, 345_678),
    size_vram: e.model.sizeBytes,
    context_length: e.numCtx,
  }));
  ex.json(200, { models });
}

/** POST /api/show. */
export function handleShow(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): void {
  const name = nameOf(body);
  if (!name) return ex.fail(400, 'model is required');
  const m = ctx.catalog.find(name);
  if (!m) return ex.fail(404, `model '${normalizeName(name)}' not found`);
  ex.json(200, showBody(m, body.verbose === true));
}

/** POST /api/pull (accepts legacy `name`). */
export async function handlePull(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  const name = nameOf(body);
  const parsed = parseModelName(name);
  if (!parsed) return ex.fail(400, 'invalid model name');
  const stream = body.stream !== false;
  const reg = ctx.findInRegistry(name);
  if (!reg) return progress(ex, ctx, stream, [{ status: 'pulling manifest' }], 'pull model manifest: file does not exist');
  const model = toCatalogModel(reg, Date.now());
  const existed = ctx.catalog.find(name) !== undefined;
  const lines: Line[] = [{ status: 'pulling manifest' }];
  for (const l of layers(model.name, model.sizeBytes)) {
    const base = { status: `pulling ${l.digest.slice(0, 12)}`, digest: `sha256:${l.digest}`, total: l.total };
    lines.push(base, { ...base, completed: Math.floor(l.total / 2) }, { ...base, completed: l.total });
  }
  lines.push({ status: 'verifying sha256 digest' }, { status: 'writing manifest' });
  if (existed) lines.push({ status: 'removing unused layers' });
  lines.push({ status: 'success' });
  await progress(ex, ctx, stream, lines, undefined, () => ctx.catalog.put({ ...model, modifiedAtMs: Date.now() }));
}

/** POST /api/push (accepts legacy `name`). */
export async function handlePush(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  const name = nameOf(body);
  const parsed = parseModelName(name);
  if (!parsed) return ex.fail(400, 'invalid model name');
  const stream = body.stream !== false;
  const m = ctx.catalog.find(name);
  if (!m) {
    const path = `/simulated/models/manifests/${parsed.host}/${parsed.namespace}/${parsed.model}/${parsed.tag}`;
    return progress(ex, ctx, stream, [{ status: 'retrieving manifest' }, { status: "couldn't retrieve manifest" }], `stat ${path}: no such file or directory`);
  }
  const lines: Line[] = [{ status: 'retrieving manifest' }];
  for (const l of layers(m.name, m.sizeBytes)) {
    const base = { status: `pushing ${l.digest.slice(0, 12)}`, digest: `sha256:${l.digest}`, total: l.total };
    lines.push(base, { ...base, completed: l.total });
  }
  lines.push({ status: 'pushing manifest' }, { status: 'success' });
  await progress(ex, ctx, stream, lines);
}

const DIGEST_RE = /^sha256[:-][0-9a-fA-F]{64}$/;

/** POST /api/create: from an installed model, or from uploaded blobs (`files`). */
export async function handleCreate(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): Promise<void> {
  const files = body.files && typeof body.files === 'object' ? Object.values(body.files as Record<string, unknown>) : [];
  for (const d of files) {
    if (typeof d !== 'string' || !DIGEST_RE.test(d)) return ex.fail(400, 'invalid digest format');
  }
  const name = nameOf(body);
  const parsed = parseModelName(name);
  if (!parsed) return ex.fail(400, 'invalid model name');
  for (const d of files as string[]) {
    if (!ctx.blobs.has(d.replace('-', ':').toLowerCase())) return ex.fail(400, `open /simulated/models/blobs/${d.replace(':', '-')}: no such file or directory`);
  }
  const from = typeof body.from === 'string' ? body.from : '';
  if (!from && files.length === 0) return ex.fail(400, "neither 'from' or 'files' was specified");
  const stream = body.stream !== false;
  let base: CatalogModel | undefined;
  if (from) {
    const reg = ctx.findInRegistry(from);
    base = ctx.catalog.find(from) ?? (reg ? toCatalogModel(reg, Date.now()) : undefined);
    if (!base) return progress(ex, ctx, stream, [{ status: 'pulling manifest' }], 'pull model manifest: file does not exist');
  } else {
    const size = (files as string[]).reduce((a, d) => a + (ctx.blobs.get(d.replace('-', ':').toLowerCase()) ?? 0), 0);
    base = toCatalogModel({ name: displayName(parsed), sizeBytes: size }, Date.now());
  }
  const str = (k: string): string | undefined => (typeof body[k] === 'string' && body[k] ? (body[k] as string) : undefined);
  const lines: Line[] = layers(base.name, base.sizeBytes).map((l) => ({ status: `using existing layer sha256:${l.digest}` }));
  for (const k of ['template', 'system', 'license', 'parameters']) {
    if (body[k] !== undefined && body[k] !== null) lines.push({ status: `creating new layer sha256:${sha(name + k + JSON.stringify(body[k]))}` });
  }
  lines.push({ status: 'writing manifest' }, { status: 'success' });
  const quantize = str('quantize');
  const created: CatalogModel = {
    ...base,
    name: displayName(parsed),
    parsed,
    digest: sha('manifest:' + displayName(parsed) + JSON.stringify(body)),
    modifiedAtMs: Date.now(),
    system: str('system') ?? base.system,
    template: str('template') ?? base.template,
    quantizationLevel: quantize ? quantize.toUpperCase() : base.quantizationLevel,
  };
  await progress(ex, ctx, stream, lines, undefined, () => ctx.catalog.put(created));
}

/** POST /api/copy: 200 with an empty body. */
export function handleCopy(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): void {
  const source = typeof body.source === 'string' ? body.source : '';
  const destination = typeof body.destination === 'string' ? body.destination : '';
  if (!parseModelName(source)) return ex.fail(400, `source ${JSON.stringify(source)} is invalid`);
  const dst = parseModelName(destination);
  if (!dst) return ex.fail(400, `destination ${JSON.stringify(destination)} is invalid`);
  const m = ctx.catalog.find(source);
  if (!m) return ex.fail(404, `model ${JSON.stringify(source)} not found`);
  ctx.catalog.put({ ...m, name: displayName(dst), parsed: dst, modifiedAtMs: Date.now() });
  ex.empty(200);
}

/** DELETE /api/delete (accepts legacy `name`): 200 with an empty body. */
export function handleDelete(ex: Exchange, ctx: SimContext, body: Record<string, unknown>): void {
  const name = nameOf(body);
  if (!parseModelName(name)) return ex.fail(400, `name ${JSON.stringify(name)} is invalid`);
  const m = ctx.catalog.find(name);
  if (!m) return ex.fail(404, `model '${name}' not found`);
  ctx.catalog.remove(name);
  ctx.loaded.expire(m.name);
  ex.empty(200);
}

/** HEAD /api/blobs/:digest: 200 present, 404 absent, 400 malformed. */
export function handleBlobHead(ex: Exchange, ctx: SimContext, digest: string): void {
  if (!DIGEST_RE.test(digest)) return ex.fail(400, 'invalid digest format');
  if (!ctx.blobs.has(digest.replace('-', ':').toLowerCase())) return ex.fail(404, `blob ${JSON.stringify(digest)} not found`);
  ex.empty(200);
}

/**
 * POST /api/blobs/:digest: hashes the body as it streams in (never buffered). 201 created,
 * 200 when it already exists (body not read), 400 on a malformed digest or a mismatch.
 */
export async function handleBlobPost(ex: Exchange, ctx: SimContext, digest: string): Promise<void> {
  if (!DIGEST_RE.test(digest)) {
    ex.req.resume();
    return ex.fail(400, 'invalid digest format');
  }
  if (ctx.blobs.has(digest.replace('-', ':').toLowerCase())) {
    ex.req.resume();
    return ex.empty(200);
  }
  const hash = createHash('sha256');
  let size = 0;
  const ok = await new Promise<boolean>((resolve) => {
    ex.req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      hash.update(chunk);
    });
    ex.req.once('end', () => resolve(true));
    ex.req.once('error', () => resolve(false));
    ex.req.once('close', () => resolve(ex.req.complete));
  });
  if (!ok) return;
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== digest) return ex.fail(400, `digest mismatch, expected ${JSON.stringify(digest)}, got ${JSON.stringify(got)}`);
  ctx.blobs.set(got, size);
  ex.empty(201);
}
