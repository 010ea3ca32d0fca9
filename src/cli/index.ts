/**
 * The `mpconn` command: `mpconn listen ADDRESS` and `mpconn send ADDRESS
 * [JSON...]`. `run` is the whole program; `main.ts` only hands it
 * the process.
 */
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { parseCommandLine, UsageError, HELP } from './args.js';
import { CommandError, type Io, listen, reason, send } from './commands.js';
import { InputError } from './json-values.js';

export { HELP, parseAddress, parseCommandLine, parseValue, USAGE, UsageError } from './args.js';
export type { Format, Invocation, ListenCommand, SendCommand } from './args.js';
export { CommandError, showAddress } from './commands.js';
export type { Io } from './commands.js';
export { fromTaggedJson, InputError, toTaggedJson } from './json-values.js';
export type { Json } from './json-values.js';

/** The tail of a usage error's line. */
const SHORT_USAGE = 'usage: mpconn listen ADDRESS | mpconn send ADDRESS [JSON...] (mpconn --help for more)';

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** Exit codes: 0 done, 1 connection or authentication failure, 2 usage. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * Runs the command line `argv` (without `node` and the script name) and
 * resolves with the exit code. `stop` ends `listen` (exit code 0) and
 * interrupts `send` (128 + the signal number, when its reason is a signal
 * name such as `'SIGINT'`). Failures are reported as one line on `io.stderr`.
 */
export async function run(argv: readonly string[], io: Io, env: NodeJS.ProcessEnv, stop: AbortSignal): Promise<number> {
  try {
    const invocation = parseCommandLine(argv, env);
    switch (invocation.command) {
      case 'help':
        io.stdout.write(HELP);
        return EXIT_OK;
      case 'version':
        io.stdout.write(`${version()}\n`);
        return EXIT_OK;
      case 'listen':
        await listen(invocation, io, stop);
        return EXIT_OK;
      case 'send': {
        // Ctrl-C while sending or waiting for replies: stop at once, with the shell's 128 + signal number.
        let onStop = (): void => {};
        const stopped = new Promise<number>((resolve) => {
          onStop = () => resolve(interruptedExitCode(stop.reason));
          stop.addEventListener('abort', onStop, { once: true });
        });
        try {
          return await Promise.race([send(invocation, io).then(() => EXIT_OK), stopped]);
        } finally {
          stop.removeEventListener('abort', onStop);
        }
      }
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof InputError) {
      // One line, as for every failure: the cause first, then where the full usage is.
      io.stderr.write(`mpconn: ${oneLine(err.message)}; ${SHORT_USAGE}\n`);
      return EXIT_USAGE;
    }
    io.stderr.write(`mpconn: ${err instanceof CommandError ? err.message : reason(err)}\n`);
    return EXIT_FAILURE;
  }
}

/** `send` stopped by a signal: 128 + its number (130 for SIGINT), as a shell reports it; a closed stdout is not a failure. */
function interruptedExitCode(reason: unknown): number {
  const number = typeof reason === 'string' ? (constants.signals as Record<string, number | undefined>)[reason] : undefined;
  return number === undefined ? EXIT_OK : 128 + number;
}

function version(): string {
  // dist/src/cli/index.js -> package.json at the package root
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
