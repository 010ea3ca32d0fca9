// Starts the Python manager server (python-server.py, the Python docs' remote
// queue), then runs the Node consumer and producer against it, each with its
// own ManagerClient. The CPython to use: $MPCONN_PYTHON, else python3.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { consume } from './node-consumer.js';
import { produce } from './node-producer.js';

// From dist/examples/remote-queue/ back to the source folder, where the .py file is.
const serverScript = fileURLToPath(new URL('../../../examples/remote-queue/python-server.py', import.meta.url));
const python = spawn(process.env.MPCONN_PYTHON ?? 'python3', [serverScript, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
try {
  const [line] = (await once(createInterface({ input: python.stdout }), 'line')) as [string];
  console.log(`python: ${line}`);
  const [host, port] = line.replace('serving on ', '').split(':');
  const address: [string, number] = [host!, Number(port)];

  const consumed = consume(address); // waits in get() until the producer puts
  await produce(address, ['hello', 42, 'STOP']);
  console.log('consumer: done with', await consumed);
} finally {
  python.kill();
}
