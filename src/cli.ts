#!/usr/bin/env node
import { Command } from 'commander';
import { ConfigError, loadConfig } from './config/load.js';
import { serve } from './main.js';
import { registerSimCommand } from './sim/index.js';
import { registerKeysCommand } from './usage/keys-command.js';
import { openDatabase } from './storage/database.js';
import { migrateToLatest } from './storage/migrations.js';
import { PARLEY_VERSION } from './version.js';

/** `parley serve | sim | migrate | keys`: flags override PARLEY_* variables, which override the config file. */
const program = new Command('parley').description('An Ollama-compatible chat server with sessions, a fair queue and resilience').version(PARLEY_VERSION);

const withConfigFlags = (cmd: Command) =>
  cmd
    .option('--config <file>', 'JSON config file (env PARLEY_CONFIG)')
    .option('--host <host>', 'address to bind (env PARLEY_HOST, default 127.0.0.1)')
    .option('--port <port>', 'TCP port (env PARLEY_PORT, default 8000)')
    .option('--upstream <url...>', 'Ollama server(s), repeatable or comma-separated (env PARLEY_UPSTREAMS, default http://127.0.0.1:11434)')
    .option('--database <url>', 'SQLite file or postgres:// URL (env PARLEY_DATABASE_URL, default ./data/parley.db)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env PARLEY_LOG_LEVEL, default info)');

function configFrom(flags: Record<string, unknown>) {
  try {
    return loadConfig({ flags, env: process.env, ...(typeof flags.config === 'string' ? { configFile: flags.config } : {}) });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`parley: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

withConfigFlags(program.command('serve').description('run Parley (the default settings need Ollama at 127.0.0.1:11434)')).action(async (flags: Record<string, unknown>) => {
  await serve(configFrom(flags));
});

withConfigFlags(program.command('migrate').description('create or update the database tables, then exit')).action(async (flags: Record<string, unknown>) => {
  const config = configFrom(flags);
  const database = await openDatabase(config.databaseUrl);
  try {
    const applied = await migrateToLatest(database);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'database is up to date\n');
  } finally {
    await database.close();
  }
});

registerSimCommand(program);
registerKeysCommand(program, withConfigFlags, configFrom, {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  exit: (code) => {
    process.exitCode = code;
  },
});

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`parley: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
