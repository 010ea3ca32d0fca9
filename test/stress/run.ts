/**
 * `npm run stress [-- --scale N] [-- mocha options]`: the stress suite at a
 * larger size. `--scale N` (or STRESS_SCALE=N; default 10) multiplies the
 * work of every stress test: messages per client, bytes flooded and pushed,
 * fault rounds, fuzz runs. Other arguments go to mocha (e.g. `--grep load`).
 * STRESS_SEED=n replays the random choices of a failed run.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
let scale = process.env.STRESS_SCALE || '10';
const rest: string[] = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i]!;
  if (arg === '--scale') scale = args[++i] ?? '';
  else if (arg.startsWith('--scale=')) scale = arg.slice('--scale='.length);
  else rest.push(arg);
}
if (!(Number(scale) > 0)) {
  console.error(`stress: --scale must be a positive number, got ${JSON.stringify(scale)}`);
  process.exit(2);
}

const mocha = createRequire(import.meta.url).resolve('mocha/bin/mocha.js');
const specs = fileURLToPath(new URL('./', import.meta.url)) + '**/*.test.js';
console.log(`stress suite at scale ${scale}`);
const result = spawnSync(process.execPath, [mocha, '--reporter', 'spec', specs, ...rest], {
  stdio: 'inherit',
  env: { ...process.env, STRESS_SCALE: scale },
});
process.exit(result.status ?? 1);
