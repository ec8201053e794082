import { SETTINGS } from '../config/schema.js';
import { ERROR_CODES } from '../errors/codes.js';

/** docs/configuration.md, generated from SETTINGS (kept equal by src/docs/render-docs.test.ts). */
export function renderConfigurationDoc(): string {
  const rows = SETTINGS.map((s) => `| \`${s.path}\` | \`${s.env}\` | ${s.flag ? `\`${s.flag}\`` : ''} | \`${s.default}\` | ${s.unit} | ${s.description} |`);
  return [
    '# Configuration',
    '',
    'Every setting has a default; Parley starts with none given. Sources, later ones winning:',
    'defaults, a JSON config file (`--config FILE` or `PARLEY_CONFIG`, same nesting as the "setting" column),',
    '`PARLEY_*` environment variables, command-line flags of `parley serve`. A bad value stops Parley',
    'at start-up with one line naming the setting, e.g. `parley: invalid setting port (from PARLEY_PORT): expected a whole number, got "abc"`.',
    '',
    '| setting | environment | flag | default | unit | meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    'Example config file:',
    '',
    '```json',
    '{ "port": 8000, "upstreams": ["http://127.0.0.1:11434"], "queue": { "slotsPerUpstream": 2, "maxDepth": 512 } }',
    '```',
    '',
  ].join('\n');
}

/** docs/errors.md, generated from the error registry. */
export function renderErrorsDoc(): string {
  const rows = Object.entries(ERROR_CODES).map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.retryable ? 'yes' : 'no'} | ${spec.description} |`);
  return [
    '# Errors',
    '',
    'Every error Parley answers has a stable code (in logs as `code`) and an HTTP status. On the native',
    'API the body is Ollama\'s shape, `{"error":"…"}`, with Ollama\'s own text where Ollama has one; after',
    'the first chunk of a stream, the error is a final `{"error":"…"}` NDJSON line on the 200 response, as',
    'Ollama does. Registry: `src/errors/codes.ts`.',
    '',
    '| code | status | retryable | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}
