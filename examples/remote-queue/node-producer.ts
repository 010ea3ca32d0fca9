// The Python docs' remote queue, producer side, in Node: connect to the
// Python manager, get its queue, put items. Run on its own:
//   node dist/examples/remote-queue/node-producer.js 127.0.0.1 50000
import { ManagerClient } from 'mpconn';

export async function produce(address: [string, number], items: unknown[]): Promise<void> {
  await using manager = await ManagerClient.connect(address, { authkey: 'abracadabra' });
  const queue = await manager.create('get_queue'); // Python: m.get_queue()
  for (const item of items) await queue.put(item);
  console.log(`producer: put ${items.length} items`);
} // `await using` releases the proxy and closes the connections here

if (import.meta.url === `file://${process.argv[1]}`) {
  await produce([process.argv[2] ?? '127.0.0.1', Number(process.argv[3] ?? 50000)], ['hello', 42, 'STOP']);
}
