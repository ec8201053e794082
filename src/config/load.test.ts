import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './load.js';
import { SETTINGS } from './schema.js';

describe('loadConfig', () => {
  it('starts on the documented defaults with nothing given', () => {
    const c = loadConfig({ env: {} });
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8000);
    expect(c.upstreams).toEqual(['http://127.0.0.1:11434']);
    expect(c.databaseUrl).toBe('./data/parley.db');
    expect(c.queue).toMatchObject({ slotsPerUpstream: 1, maxDepth: 512 });
    expect(Object.isFrozen(c.queue)).toBe(true);
  });

  it('documents the default each setting really has', () => {
    const c = loadConfig({ env: {} }) as unknown as Record<string, unknown>;
    for (const s of SETTINGS) {
      const value = s.path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], c);
      expect(Array.isArray(value) ? (value as string[]).join(',') : String(value), s.path).toBe(s.default);
    }
  });

  it('lets env override the file and flags override env', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
    const file = join(dir, 'parley.json');
    writeFileSync(file, JSON.stringify({ port: 9001, host: '0.0.0.0', queue: { maxDepth: 7 } }));
    const c = loadConfig({ configFile: file, env: { PARLEY_PORT: '9002', PARLEY_UPSTREAMS: 'http://a:1, http://b:2' }, flags: { port: '9003' } });
    expect(c.port).toBe(9003);
    expect(c.host).toBe('0.0.0.0');
    expect(c.queue.maxDepth).toBe(7);
    expect(c.upstreams).toEqual(['http://a:1', 'http://b:2']);
  });

  it('reads repeated --upstream flags as a list', () => {
    expect(loadConfig({ env: {}, flags: { upstream: ['http://a:1', 'http://b:2,http://c:3'] } }).upstreams).toEqual(['http://a:1', 'http://b:2', 'http://c:3']);
  });

  it.each([
    [{ PARLEY_PORT: 'abc' }, /invalid setting port \(from PARLEY_PORT\): expected a whole number, got "abc"/],
    [{ PARLEY_PORT: '70000' }, /invalid setting port \(from PARLEY_PORT\)/],
    [{ PARLEY_UPSTREAMS: 'ftp://x' }, /invalid setting upstreams \(from PARLEY_UPSTREAMS\): must be an http\(s\) URL/],
    [{ PARLEY_LOG_LEVEL: 'loud' }, /invalid setting logLevel \(from PARLEY_LOG_LEVEL\)/],
    [{ PARLEY_QUEUE_SLOTS: '0' }, /invalid setting queue.slotsPerUpstream \(from PARLEY_QUEUE_SLOTS\)/],
  ])('rejects %o with one line naming the setting', (env, message) => {
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    expect(() => loadConfig({ env })).toThrow(message);
  });

  it('names the config file when it holds a bad value or an unknown key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'parley-config-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ queue: { maxDepth: -1 } }));
    expect(() => loadConfig({ configFile: file, env: {} })).toThrow(`invalid setting queue.maxDepth (from config file ${file})`);
    writeFileSync(file, '{ not json');
    expect(() => loadConfig({ configFile: file, env: {} })).toThrow(`invalid config file ${file}`);
  });
});
