import { defineConfig } from 'vitest/config';

/** `npm run test:chaos`: the heavy resilience scenarios in test/chaos (excluded from `npm test`). */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 30_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
  },
});
