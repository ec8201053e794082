import { describe, expect, it } from 'vitest';
import { AUTO_TITLE_MAX_CHARS, autoTitle } from './conversation-title.js';

describe('autoTitle', () => {
  it('keeps a short first message as it is, with whitespace collapsed', () => {
    expect(autoTitle('  Plan a trip\n\nto   Lisbon ')).toBe('Plan a trip to Lisbon');
  });

  it('cuts a long one at a word boundary and adds an ellipsis', () => {
    const t = autoTitle('What should I pack for a week of hiking in the Scottish Highlands in October?');
    expect(t).toBe('What should I pack for a week of hiking in the Scottish…');
    expect(Array.from(t!).length).toBeLessThanOrEqual(AUTO_TITLE_MAX_CHARS);
  });

  it('cuts text without spaces by characters, never inside a surrogate pair', () => {
    const t = autoTitle('😀'.repeat(100))!;
    expect(Array.from(t)).toHaveLength(AUTO_TITLE_MAX_CHARS);
    expect(t.endsWith('😀…')).toBe(true);
  });

  it('gives no title for a message without text', () => {
    expect(autoTitle(' \n ')).toBeNull();
  });
});
