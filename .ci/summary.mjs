// Prints one line 'tests: N passed, N failed, N skipped' from every vitest JSON report in
// test-results/ (written when CI=true), so the CI log states plainly what ran.
import { readdirSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
for (const f of readdirSync('test-results').filter((n) => n.endsWith('.json'))) {
  const r = JSON.parse(readFileSync(`test-results/${f}`, 'utf8'));
  passed += r.numPassedTests;
  failed += r.numFailedTests;
  skipped += r.numPendingTests + (r.numTodoTests ?? 0);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
