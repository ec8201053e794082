// @ts-check
/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by package / area and the top
 * functions. Usage: node bench/profile-summary.mjs <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';

const [file, topArg = '25'] = process.argv.slice(2);
if (!file) throw new Error('usage: profile-summary.mjs <file.cpuprofile> [top]');
/** @type {{ nodes: Array<{ id: number, callFrame: { functionName: string, url: string, lineNumber: number }, hitCount?: number }>, samples: number[], timeDeltas: number[] }} */
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
/** @type {Map<number, number>} */
const self = new Map();
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (prof.timeDeltas[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);

function area(/** @type {string} */ url, /** @type {string} */ fn) {
  if (!url) return fn === '(garbage collector)' ? 'GC' : fn === '(idle)' ? 'idle' : fn === '(program)' ? 'program (native)' : 'native';
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1];
  if (url.startsWith('node:')) return 'node:' + (url.split(':')[1]?.split('/')[1] ?? url);
  const d = /\/dist\/(.*)$/.exec(url);
  if (d) return 'parley ' + d[1].split('/').slice(0, -1).join('/');
  return url;
}
/** @type {Map<string, number>} */
const areas = new Map();
/** @type {Map<string, number>} */
const fns = new Map();
for (const [id, us] of self) {
  const n = byId.get(id);
  if (!n) continue;
  const { functionName, url, lineNumber } = n.callFrame;
  const a = area(url, functionName);
  areas.set(a, (areas.get(a) ?? 0) + us);
  const k = `${functionName || '(anonymous)'}  ${url.replace(/^.*\/(node_modules|dist)\//, '$1/')}:${lineNumber + 1}`;
  fns.set(k, (fns.get(k) ?? 0) + us);
}
const busy = total - (areas.get('idle') ?? 0);
const pctOf = (/** @type {number} */ us) => ((100 * us) / busy).toFixed(1).padStart(5) + '%';
console.log(`profile ${file}: ${(total / 1000).toFixed(0)} ms sampled, ${(busy / 1000).toFixed(0)} ms busy (percentages of busy)`);
console.log('\nby area (self time):');
for (const [a, us] of [...areas].filter(([a]) => a !== 'idle').sort((x, y) => y[1] - x[1]).slice(0, 20)) console.log(`${pctOf(us)}  ${a}`);
console.log(`\ntop ${topArg} functions (self time):`);
for (const [k, us] of [...fns].sort((x, y) => y[1] - x[1]).filter(([k]) => !k.startsWith('(idle)')).slice(0, Number(topArg))) console.log(`${pctOf(us)}  ${k}`);

// Inclusive time of Parley's own functions (a function counted once per sample, however deep it recurses).
/** @type {Map<number, number>} */
const parent = new Map();
for (const n of /** @type {any[]} */ (prof.nodes)) for (const c of n.children ?? []) parent.set(c, n.id);
/** @type {Map<string, number>} */
const incl = new Map();
for (const [id, us] of self) {
  const seen = new Set();
  for (let cur = /** @type {number | undefined} */ (id); cur !== undefined; cur = parent.get(cur)) {
    const n = byId.get(cur);
    if (!n || !n.callFrame.url.includes('/dist/')) continue;
    const k = `${n.callFrame.functionName || '(anonymous)'}  ${n.callFrame.url.replace(/^.*\/dist\//, '')}:${n.callFrame.lineNumber + 1}`;
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + us);
  }
}
console.log(`\ntop ${topArg} of Parley's functions (inclusive time):`);
for (const [k, us] of [...incl].sort((x, y) => y[1] - x[1]).slice(0, Number(topArg))) console.log(`${pctOf(us)}  ${k}`);
