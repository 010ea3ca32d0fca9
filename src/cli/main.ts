#!/usr/bin/env node
/**
 * Entry point of the `mpconn` command (package.json `bin`): runs the command
 * line against this process's streams. SIGINT and SIGTERM stop `listen`
 * cleanly (socket file removed, exit code 0) and interrupt `send` (130, 143).
 */
import { run } from './index.js';

const stop = new AbortController();
const onSignal = (signal: NodeJS.Signals): void => stop.abort(signal);
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
// A closed stdout (`mpconn listen ... | head -1`) means nobody wants more lines: stop quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') stop.abort('EPIPE');
});

const code = await run(process.argv.slice(2), process, process.env, stop.signal);
process.off('SIGINT', onSignal);
process.off('SIGTERM', onSignal);
// Let buffered output reach the pipe before exiting (stdout is asynchronous on some platforms).
await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
process.exit(code);
