import type { Command } from 'commander';
import type { ParleyConfig } from '../config/schema.js';
import { isParleyError } from '../errors/parley-error.js';
import { openDatabase } from '../storage/database.js';
import { migrateToLatest } from '../storage/migrations.js';
import { KeyService } from './key-service.js';

/** Where `parley keys` writes (tests pass their own). */
export interface KeysCommandIo {
  out: (s: string) => void;
  err: (s: string) => void;
  exit: (code: number) => void;
}

/**
 * `parley keys create --name <name> [--tier <tier>] [--admin]` (prints the key once),
 * `parley keys list`, `parley keys revoke <id>`: operate on the database directly (migrating it
 * first), so they work while Parley runs or not. Exit code 2 for bad input (unknown tier, unknown id).
 * @param withConfig adds the config flags and turns them into a config
 */
export function registerKeysCommand(program: Command, withConfig: (c: Command) => Command, configFrom: (flags: Record<string, unknown>) => ParleyConfig, io: KeysCommandIo): void {
  const keys = program.command('keys').description('create, list and revoke API keys');
  const run = async (flags: Record<string, unknown>, work: (svc: KeyService) => Promise<void>) => {
    const config = configFrom(flags);
    const database = await openDatabase(config.databaseUrl);
    try {
      await migrateToLatest(database);
      await work(new KeyService(database, { tiers: () => Object.keys(config.users.tiers), defaultTier: () => config.users.defaultTier }));
    } catch (e) {
      if (!isParleyError(e)) throw e;
      io.err(`parley: ${e.message}\n`);
      io.exit(2);
    } finally {
      await database.close();
    }
  };
  withConfig(keys.command('create').description('create a key and print it (shown only this once)'))
    .requiredOption('--name <name>', 'who or what the key is for')
    .option('--tier <tier>', 'tier (default users.defaultTier, e.g. free, premium, enterprise)')
    .option('--admin', 'the key may also use /admin')
    .action((flags: Record<string, unknown>) =>
      run(flags, async (svc) => {
        const k = await svc.create({ name: flags.name, tier: flags.tier, admin: flags.admin === true });
        io.out(`${k.key}\n`);
        io.err(`created key ${k.prefix}… id ${k.id} name '${k.name}' tier ${k.tier}${k.admin ? ' (admin)' : ''}; it is shown only this once\n`);
      }),
    );
  withConfig(keys.command('list').description('list keys (never the keys themselves)')).action((flags: Record<string, unknown>) =>
    run(flags, async (svc) => {
      for (const k of await svc.list()) io.out(`${k.id}\t${k.prefix}\t${k.tier}${k.admin ? ',admin' : ''}\t${k.revokedAt ? `revoked ${k.revokedAt}` : 'active'}\t${k.name}\n`);
    }),
  );
  withConfig(keys.command('revoke').description('revoke a key at once').argument('<id>', 'key id (from keys list)')).action((id: string, flags: Record<string, unknown>) =>
    run(flags, async (svc) => {
      const k = await svc.revoke(id);
      io.out(`revoked ${k.prefix} (${k.name})\n`);
    }),
  );
}
