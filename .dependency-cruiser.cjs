/**
 * Import rules (docs/development.md, ../shared/design/architecture.md): imports flow
 * api → chat → {queue, upstream, context, conversations, usage, resilience} → storage;
 * observability, errors, config and docs may be imported anywhere; no cycles.
 * Run: npm run lint:deps (after npm run build; also in .ci/run).
 */
const middle = '^dist/(queue|upstream|context|conversations|usage|resilience|flows)/';
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles make start-up order and testing fragile.',
      from: { path: '^dist/' },
      to: { circular: true, },
    },
    {
      name: 'storage-is-the-bottom',
      severity: 'error',
      from: { path: '^dist/storage/' },
      to: { path: '^dist/(api|chat|queue|upstream|context|conversations|usage|resilience|flows)/' },
    },
    {
      name: 'services-do-not-know-the-wire-or-the-pipeline',
      severity: 'error',
      from: { path: middle },
      to: { path: '^dist/(api|chat)/' },
    },
    {
      name: 'the-pipeline-does-not-know-routes',
      severity: 'error',
      from: { path: '^dist/chat/' },
      to: { path: '^dist/api/' },
    },
    {
      name: 'the-simulator-stands-alone',
      severity: 'error',
      comment: 'The simulator imitates Ollama, not Parley: only the CLI, the demo and tests start it.',
      from: { path: '^dist/', pathNot: ['^dist/sim/', '^dist/cli\\.js$', '^dist/demo\\.js$'] },
      to: { path: '^dist/sim/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // TypeScript 7 has no JS compiler API for dependency-cruiser to parse .ts with, so the rules
    // run on the compiled output (npm run build): type-only imports are erased there, as they
    // should be for cycles.
    exclude: { path: '\\.(test|map)\\.js$' },
  },
};
