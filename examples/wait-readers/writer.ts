// One child of the wait-readers example: ten messages to the parent, then close.
import { parentConnection } from 'mpconn';

const name = process.argv[2] ?? 'writer';
const w = parentConnection();
for (let i = 0; i < 10; i++) await w.send([i, name]);
await w.close();
