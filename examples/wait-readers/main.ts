// Python's wait() example: four child processes each send ten messages and
// close; the parent multiplexes them with wait() until every one hits EOF.
import { fileURLToPath } from 'node:url';
import { type Connection, EOFError, spawn, wait } from 'mpconn';

const writer = fileURLToPath(new URL('./writer.js', import.meta.url));

const readers: Connection[] = [];
for (let i = 0; i < 4; i++) {
  readers.push(spawn(writer, [`writer-${i}`]).connection);
}

let received = 0;
while (readers.length > 0) {
  for (const r of (await wait(readers)) as Connection[]) {
    try {
      const msg = await r.recv();
      console.log(msg);
      received++;
    } catch (err) {
      if (!(err instanceof EOFError)) throw err;
      readers.splice(readers.indexOf(r), 1);
      await r.close();
    }
  }
}
console.log(`received ${received} messages`);
