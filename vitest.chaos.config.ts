import { defineConfig } from 'vitest/config';

/** `npm run test:chaos`: the heavy resilience scenarios in test/chaos (excluded from `npm test`). */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: false,
    // In CI a JSON report is also written, so .ci/run's closing line counts the chaos tests too.
    reporters: process.env.CI ? ['default', ['json', { outputFile: 'test-results/chaos.json' }]] : ['default'],
  },
});
