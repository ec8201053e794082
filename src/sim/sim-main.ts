import { Command } from 'commander';
import { registerSimCommand } from './sim-command.js';

/**
 * Stand-alone entry for the simulator without the rest of Parley:
 * `node dist/sim/sim-main.js [sim] [--port 11434 …]` (same flags as `parley sim --help`).
 * Chaos tests spawn it as a child process and wait for the "listening on" line.
 */
const program = new Command('parley-sim');
registerSimCommand(program);
const args = process.argv.slice(2);
if (args[0] !== 'sim' && args[0] !== 'help') args.unshift('sim');
await program.parseAsync(args, { from: 'user' });
