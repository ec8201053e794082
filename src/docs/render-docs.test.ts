import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderConfigurationDoc, renderErrorsDoc } from './render-docs.js';

// `npm run docs` (UPDATE_DOCS=1) rewrites the files; otherwise the test fails when they drift.
const docs = [
  { file: new URL('../../docs/configuration.md', import.meta.url), render: renderConfigurationDoc, what: 'every setting with its default and unit' },
  { file: new URL('../../docs/errors.md', import.meta.url), render: renderErrorsDoc, what: 'every error code with its status' },
];

describe('docs', () => {
  for (const d of docs) {
    it(`${d.file.pathname.split('/').slice(-2).join('/')} lists ${d.what}`, () => {
      if (process.env.UPDATE_DOCS === '1') writeFileSync(d.file, d.render());
      expect(readFileSync(d.file, 'utf8')).toBe(d.render());
    });
  }
});
