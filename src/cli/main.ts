import { describeError, SnakebiteError } from '../errors';
import { clientCommand } from './client';
import { doctorCommand } from './doctor';
import { serverCommand } from './server';
import { statusCommand } from './status';

/** The package's version: package.json sits three levels above dist/src/cli/ (a bundler inlines it). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const VERSION: string = (require('../../../package.json') as { version: string }).version;

export const MAIN_HELP = `Usage: snakebite <command> [options]

Punches NAT holes between WireGuard peers with one small fang server that
tells every peer where the others are, inside the tunnel.

Commands:
  server    run on the fang: serve the peer list on its WireGuard address
  client    run on a peer: apply the fang's peer list (daemon, or --once)
  status    show per peer whether the path is direct, lan, relayed or none, and why
  doctor    check this peer's or the fang's setup and say what to change

Run 'snakebite <command> --help' for its options.
  -h, --help       show this help
  -V, --version    print the version
Exit codes: 0 success, 1 failure, 2 bad usage.
`;

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  server: serverCommand,
  client: clientCommand,
  status: statusCommand,
  doctor: doctorCommand,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(MAIN_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command === '-V' || command === '--version') {
    process.stdout.write(`snakebite ${VERSION}\n`);
    return 0;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`snakebite: unknown command "${command}"; run 'snakebite --help'\n`);
    return 2;
  }
  try {
    return await run(rest);
  } catch (error) {
    if (error instanceof SnakebiteError) {
      process.stderr.write(`snakebite ${command}: ${error.message}\n${error.hint ? `  hint: ${error.hint}\n` : ''}`);
      return error.code === 'SB_USAGE' ? 2 : 1;
    }
    // Not one of ours: a bug, so show where it came from.
    process.stderr.write(`snakebite ${command}: ${describeError(error)}\n`);
    if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`snakebite: ${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
