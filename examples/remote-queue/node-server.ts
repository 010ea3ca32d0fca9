// The reverse direction of the Python docs' remote queue: Node holds the
// queue, unmodified Python programs put into it and get from it, and the Node
// program uses the same queue itself. Starts a ManagerServer, then a Python
// consumer (it waits in get()) and a Python producer; once both are done, Node
// takes the item left for it. The CPython to use: $MPCONN_PYTHON, else python3.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { ManagerServer, SharedQueue } from 'mpconn';

const queue = new SharedQueue();
await using server = await ManagerServer.listen(['127.0.0.1', Number(process.argv[2] ?? 0)], { authkey: 'abracadabra' });
// Python: QueueManager.register('get_queue', callable=lambda: queue)
server.register('get_queue', () => queue);
const [host, port] = server.address as readonly [string, number];
console.log(`node: serving on ${host}:${port}`);

// From dist/examples/remote-queue/ back to the source folder, where the .py files are.
const script = (name: string): string => fileURLToPath(new URL(`../../../examples/remote-queue/${name}`, import.meta.url));
async function python(name: string): Promise<void> {
  const child = spawn(process.env.MPCONN_PYTHON ?? 'python3', [script(name), host, String(port)], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${name} exited with ${code}`);
}

await Promise.all([python('python-consumer.py'), python('python-producer.py')]);
console.log('node: got', await queue.get(), `(${queue.qsize()} left)`);
