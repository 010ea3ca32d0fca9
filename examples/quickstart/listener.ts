// The quick start, listener side: Python's documented Listener/Client example
// with mpconn. It starts the client (client.ts) as a second process.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Listener } from 'mpconn';

const authkey = 'secret password';

await using listener = await Listener.listen(['localhost', 0], { authkey });
const [host, port] = listener.address as [string, number];
console.log(`listener: listening on ${host}:${port}`);

const clientScript = fileURLToPath(new URL('./client.js', import.meta.url));
const client = spawn(process.execPath, [clientScript, host, String(port)], { stdio: 'inherit' });

{
  await using conn = await listener.accept();
  console.log('listener: connection accepted from', listener.lastAccepted);
  await conn.send([2.25, null, 'junk']);
  await conn.sendBytes(new TextEncoder().encode('hello'));
  await conn.sendBytes(new Int32Array([42, 1729]));
}

const [code] = await once(client, 'exit');
process.exitCode = code ?? 1;
