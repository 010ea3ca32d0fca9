// The Python docs' remote queue, consumer side, in Node: get items until
// 'STOP'. A timeout (in seconds, as Python takes it) keeps a lost producer
// from blocking it forever. Run on its own:
//   node dist/examples/remote-queue/node-consumer.js 127.0.0.1 50000
import { kwargs, ManagerClient } from 'mpconn';

export async function consume(address: [string, number]): Promise<unknown[]> {
  await using manager = await ManagerClient.connect(address, { authkey: 'abracadabra' });
  const queue = await manager.create('get_queue');
  const items: unknown[] = [];
  for (;;) {
    const item = await queue.get(kwargs({ timeout: 10 })); // Python: queue.get(timeout=10)
    if (item === 'STOP') break;
    console.log('consumer: got', item);
    items.push(item);
  }
  return items;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await consume([process.argv[2] ?? '127.0.0.1', Number(process.argv[3] ?? 50000)]);
}
