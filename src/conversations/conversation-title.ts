/** Longest automatic title, in characters (an ellipsis is added when the text was cut). */
export const AUTO_TITLE_MAX_CHARS = 60;

/**
 * The automatic title of a conversation, made from its first user message once the first exchange
 * completed: whitespace (newlines included) collapsed to single spaces, trimmed, and cut to
 * `AUTO_TITLE_MAX_CHARS` characters at a word boundary when there is one in the last third, with
 * `…` appended when cut. Returns null for a message with no text (e.g. only images).
 */
export function autoTitle(firstUserMessage: string): string | null {
  const text = firstUserMessage.replace(/\s+/g, ' ').trim();
  if (text === '') return null;
  const chars = Array.from(text);
  if (chars.length <= AUTO_TITLE_MAX_CHARS) return text;
  let cut = chars.slice(0, AUTO_TITLE_MAX_CHARS - 1).join('');
  const space = cut.lastIndexOf(' ');
  if (space >= (AUTO_TITLE_MAX_CHARS * 2) / 3) cut = cut.slice(0, space);
  return cut.replace(/[\s.,;:!?-]+$/, '') + '…';
}

/**
 * The automatic title of a conversation whose first messages are `messages` (its first user
 * message's), or undefined when they hold no user message.
 */
export function firstTurnTitle(messages: ReadonlyArray<{ role: string; content: string }>): string | null | undefined {
  const first = messages.find((m) => m.role === 'user');
  return first === undefined ? undefined : autoTitle(first.content);
}
