import { describe, expect, it } from 'vitest';
import { fitToWindow, replyReserve, type Counted } from './truncation.js';

const m = (role: string, tokens: number, id = `${role}${tokens}`): Counted & { id: string } => ({ role, tokens, id });

describe('fitToWindow', () => {
  const history = [m('system', 10, 's'), m('user', 20, 'u1'), m('assistant', 30, 'a1'), m('user', 20, 'u2'), m('assistant', 30, 'a2')];

  it('keeps everything when it fits, and sends no summary', () => {
    const r = fitToWindow({ history, incoming: [m('user', 5)], summaryTokens: 12, windowTokens: 200, reserveTokens: 50 });
    expect(r).toEqual({ fits: true, kept: history, dropped: [], droppedTurns: 0, summary: false, promptTokens: 115 });
  });

  it('drops the oldest whole turns first and always keeps the system prompt', () => {
    // 10 system + 5 new = 15 fixed; available 100 - 20 = 80; the last turn (50) fits, two (100) do not.
    const r = fitToWindow({ history, incoming: [m('user', 5)], summaryTokens: null, windowTokens: 100, reserveTokens: 20 });
    expect(r.fits).toBe(true);
    if (!r.fits) return;
    expect(r.kept.map((x) => x.id)).toEqual(['s', 'u2', 'a2']);
    expect(r.dropped.map((x) => x.id)).toEqual(['u1', 'a1']);
    expect(r.droppedTurns).toBe(1);
    expect(r.promptTokens).toBe(65);
  });

  it('counts the summary against the window when history was dropped', () => {
    // With a 20-token summary, 15 + 20 + 50 = 85 > 80: both turns go; 15 + 20 = 35 fits.
    const r = fitToWindow({ history, incoming: [m('user', 5)], summaryTokens: 20, windowTokens: 100, reserveTokens: 20 });
    expect(r.fits && r.kept.map((x) => x.id)).toEqual(['s']);
    expect(r.fits && r.summary).toBe(true);
    expect(r.fits && r.promptTokens).toBe(35);
  });

  it('leaves a summary out that does not fit beside the system prompt and new message', () => {
    const r = fitToWindow({ history, incoming: [m('user', 60)], summaryTokens: 20, windowTokens: 100, reserveTokens: 20 });
    expect(r.fits && { kept: r.kept.map((x) => x.id), summary: r.summary }).toEqual({ kept: ['s'], summary: false });
  });

  it('never starts the kept history with a reply or a tool result (turns start at a user message)', () => {
    const tools = [m('user', 10, 'u1'), m('assistant', 10, 'call'), m('tool', 10, 'result'), m('assistant', 10, 'a1'), m('user', 10, 'u2'), m('assistant', 10, 'a2')];
    // Available 35 - 5 = 30 for history: the last three messages would fit (30) but start mid-turn.
    const r = fitToWindow({ history: tools, incoming: [m('user', 5)], summaryTokens: null, windowTokens: 40, reserveTokens: 0 });
    expect(r.fits && r.kept.map((x) => x.id)).toEqual(['u2', 'a2']);
  });

  it('keeps system messages from the middle of the conversation in place', () => {
    const h = [m('user', 50, 'u1'), m('system', 5, 'mid'), m('assistant', 50, 'a1'), m('user', 10, 'u2'), m('assistant', 10, 'a2')];
    const r = fitToWindow({ history: h, incoming: [m('user', 5)], summaryTokens: null, windowTokens: 40, reserveTokens: 0 });
    expect(r.fits && r.kept.map((x) => x.id)).toEqual(['mid', 'u2', 'a2']);
  });

  it('does not fit when the system prompt plus the new message exceed the window minus the reserve', () => {
    const r = fitToWindow({ history, incoming: [m('user', 95)], summaryTokens: null, windowTokens: 120, reserveTokens: 20 });
    expect(r).toEqual({ fits: false, requiredTokens: 105, availableTokens: 100 });
  });
});

describe('replyReserve', () => {
  it('uses a positive num_predict, else the configured reserve', () => {
    expect(replyReserve({ num_predict: 128 }, 512)).toBe(128);
    expect(replyReserve({ num_predict: -1 }, 512)).toBe(512);
    expect(replyReserve(undefined, 512)).toBe(512);
  });
});
