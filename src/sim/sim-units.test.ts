import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { request } from 'undici';
import { countTokens, parseModelList, registerSimCommand, simReplyText, toolCallId, type Simulator } from './index.js';
import { parseGoDuration, parseKeepAlive } from './sim-fields.js';
import { parseGoJson } from './sim-json.js';
import { displayName, parseModelName } from './sim-models.js';
import { planReply } from './sim-reply.js';
import { splitTokens } from './sim-tokens.js';
import { createdAt, goJson, localTime } from './sim-wire.js';

describe('tokenizer', () => {
  it('counts words and single punctuation marks', () => {
    expect(countTokens('Hello, world!')).toBe(4);
    expect(countTokens('')).toBe(0);
    expect(countTokens("it's 3.5 o'clock")).toBe(9); // it ' s 3 . 5 o ' clock
  });

  it('splits text into token pieces that join back exactly', () => {
    for (const t of ['Hello, world!', '  leading and trailing  ', 'a\nb\n\n', '']) {
      expect(splitTokens(t).join('')).toBe(t);
    }
    expect(splitTokens('Hi there.')).toEqual(['Hi', ' there', '.']);
  });

  it('generates replies of exactly N tokens, deterministically', () => {
    for (const n of [1, 2, 8, 50]) expect(countTokens(simReplyText('seed', n))).toBe(n);
    expect(simReplyText('seed', 8)).toBe(simReplyText('seed', 8));
    expect(simReplyText('seed', 8)).not.toBe(simReplyText('other seed', 8));
  });
});

describe('Go compatibility helpers', () => {
  it('escapes like json.Marshal', () => {
    expect(goJson({ a: '<&>\u2028' })).toBe('{"a":"\\u003c\\u0026\\u003e\\u2028"}');
  });

  it('formats created_at as RFC 3339 UTC with nanoseconds and no trailing zeros', () => {
    expect(createdAt(1_700_000_000_123_450_000n)).toBe('2023-11-14T22:13:20.12345Z');
    expect(createdAt(1_700_000_000_000_000_000n)).toBe('2023-11-14T22:13:20Z');
    expect(localTime(1_700_000_000_000)).toMatch(/^2023-11-1\dT\d\d:\d\d:20(Z|[+-]\d\d:\d\d)$/);
  });

  it('reports JSON syntax errors with Go texts and ignores bytes after the first value', () => {
    const err = (s: string) => {
      const r = parseGoJson(s);
      return r.ok ? 'ok' : r.error;
    };
    expect(err('{"a":1} trailing')).toBe('ok');
    expect(err('{"a" 1}')).toBe("invalid character '1' after object key");
    expect(err('{"a":1 "b":2}')).toBe("invalid character '\"' after object key:value pair");
    expect(err('[1 2]')).toBe("invalid character '2' after array element");
    expect(err('{a:1}')).toBe("invalid character 'a' looking for beginning of object key string");
    expect(err('tru')).toBe('unexpected EOF');
    expect(err('trux')).toBe("invalid character 'x' in literal true (expecting 'e')");
    expect(err('"a\nb"')).toBe("invalid character '\\n' in string literal");
    expect(parseGoJson('   ')).toEqual({ ok: false, empty: true, error: 'EOF' });
  });

  it('parses keep_alive like api.Duration', () => {
    expect(parseGoDuration('1h30m')).toBe(5_400_000);
    expect(parseGoDuration('300ms')).toBe(300);
    expect(parseGoDuration('1.5s')).toBe(1_500);
    expect(parseKeepAlive('0')).toBe(0);
    expect(parseKeepAlive(-1)).toBe(Infinity);
    expect(parseKeepAlive('-1m')).toBe(Infinity);
    expect(parseKeepAlive(2.9)).toBe(2_000);
    expect(parseKeepAlive(null)).toBeUndefined();
    expect(() => parseKeepAlive('10')).toThrow('time: missing unit in duration "10"');
    expect(() => parseKeepAlive('5x')).toThrow('time: unknown unit "x" in duration "5x"');
    expect(() => parseKeepAlive(true)).toThrow("Unsupported type: 'bool'");
  });

  it('normalises model names with Ollama defaults', () => {
    const n = parseModelName('llama3.2');
    expect(n).toEqual({ host: 'registry.ollama.ai', namespace: 'library', model: 'llama3.2', tag: 'latest' });
    expect(displayName(parseModelName('me/mine:v1')!)).toBe('me/mine:v1');
    expect(parseModelName('bad name')).toBeUndefined();
  });
});

describe('reply planning', () => {
  it('puts thinking first and caps everything with num_predict', () => {
    const p = planReply({ seed: 's', thinkingOn: true, replyTokens: 8, numPredict: 6 });
    expect(p.pieces.map((x) => x.kind)).toEqual(['thinking', 'thinking', 'thinking', 'thinking', 'content', 'content']);
    expect(p.doneReason).toBe('length');
  });

  it('takes thinking from a scripted <think> block only when thinking is on', () => {
    const on = planReply({ seed: '', thinkingOn: true, replyTokens: 8, scripted: '<think>hmm ok</think>Answer.' });
    expect(on.pieces).toEqual([
      { kind: 'thinking', text: 'hmm' },
      { kind: 'thinking', text: ' ok' },
      { kind: 'content', text: 'Answer' },
      { kind: 'content', text: '.' },
    ]);
    const off = planReply({ seed: '', thinkingOn: false, replyTokens: 8, scripted: '<think>hmm</think>Answer.' });
    expect(off.pieces.every((x) => x.kind === 'content')).toBe(true);
  });

  it('makes deterministic tool call ids of call_ + 8 [a-z0-9]', () => {
    expect(toolCallId('x')).toMatch(/^call_[a-z0-9]{8}$/);
    expect(toolCallId('x')).toBe(toolCallId('x'));
  });
});

describe('parley sim command', () => {
  it('documents its flags in --help', () => {
    const program = new Command('parley');
    registerSimCommand(program);
    const help = program.commands.find((c) => c.name() === 'sim')?.helpInformation() ?? '';
    for (const flag of ['--host', '--port', '--ttft-ms', '--token-interval-ms', '--reply-tokens', '--parallel', '--max-queue', '--load-ms', '--models']) {
      expect(help).toContain(flag);
    }
    expect(help).toContain('(default: 11434)');
  });

  it('parses --models with presets and name=cap+cap', () => {
    expect(parseModelList('llama3.2, mistral:7b=completion+tools,bge-embed')).toEqual([
      expect.objectContaining({ name: 'llama3.2:latest', capabilities: ['completion', 'tools'] }),
      { name: 'mistral:7b', capabilities: ['completion', 'tools'] },
      { name: 'bge-embed:latest', capabilities: ['embedding'] },
    ]);
  });

  it('prints one listening line, serves, and closes on SIGTERM', async () => {
    const program = new Command('parley');
    const signals = new EventEmitter();
    const lines: string[] = [];
    let sim: Simulator | undefined;
    registerSimCommand(program, { out: (l) => lines.push(l), signals, onStarted: (s) => (sim = s) });
    await program.parseAsync(['sim', '--port', '0', '--reply-tokens', '3', '--models', 'tinyllama'], { from: 'user' });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^ollama simulator listening on http:\/\/127\.0\.0\.1:\d+\n$/);
    const url = lines[0]!.trim().split(' ').at(-1)!;
    const res = await request(url + '/api/generate', { method: 'POST', body: JSON.stringify({ model: 'tinyllama', prompt: 'hi', stream: false }) });
    expect(((await res.body.json()) as { eval_count: number }).eval_count).toBe(3);
    signals.emit('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    await expect(request(url + '/')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(sim?.port).toBeGreaterThan(0);
  });
});
