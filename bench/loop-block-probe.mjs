// @ts-check
/**
 * A preload that logs every stretch of over 60 ms in which the event loop ran no timer: the wall
 * time between two 10 ms ticks, with the epoch time it ended and the process uptime (which
 * `--trace-gc` also prints, so blocks line up with collections). monitorEventLoopDelay missed
 * such blocks in the benchmark (a block that ends in the histogram's next window, after a reset).
 *
 *   BENCH_BASE_CLI=dist/cli.js BENCH_BASE_NODE_ARGS="--import ./bench/loop-block-probe.mjs --trace-gc" \
 *     BENCH_KEEP_TMP=1 BENCH_GAP_TIMES=1 BENCH_TARGETS=Cbase node bench/cell.mjs gap-500
 *   then: grep loopblock <kept dir>/base.log
 */
const BLOCK_MS = 60;
let last = performance.now();
setInterval(() => {
  const t = performance.now();
  if (t - last > BLOCK_MS) process.stderr.write(`loopblock ${Math.round(t - last)} ms, ended at ${Date.now()} (uptime ${Math.round(t)} ms)\n`);
  last = t;
}, 10).unref();
