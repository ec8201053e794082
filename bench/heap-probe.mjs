// @ts-check
/**
 * Preloaded into every target (`node --expose-gc --import ./bench/heap-probe.mjs …`): on SIGUSR2 it
 * runs a full GC and writes `process.memoryUsage()` to `$BENCH_PROBE_DIR/heap-<pid>.json`. Idle
 * otherwise (one signal listener), so it does not change what is measured.
 */
import { writeFileSync, renameSync } from 'node:fs';

const dir = process.env.BENCH_PROBE_DIR;
if (dir) {
  process.on('SIGUSR2', () => {
    const gc = /** @type {undefined | (() => void)} */ (/** @type {any} */ (globalThis).gc);
    gc?.();
    gc?.();
    const file = `${dir}/heap-${process.pid}.json`;
    writeFileSync(file + '.tmp', JSON.stringify({ ...process.memoryUsage(), at: Date.now() }));
    renameSync(file + '.tmp', file);
  });
}
