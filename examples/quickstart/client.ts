// The quick start, client side (started by listener.ts with the address).
import { Client } from 'mpconn';

const [host = 'localhost', port = '6000'] = process.argv.slice(2);

await using conn = await Client([host, Number(port)], { authkey: 'secret password' });
console.log('client: recv()           =>', await conn.recv()); // [ 2.25, null, 'junk' ]
console.log('client: recvBytes()      =>', (await conn.recvBytes()).toString()); // hello
const arr = new Int32Array(5);
console.log('client: recvBytesInto()  =>', await conn.recvBytesInto(arr)); // 8
console.log('client: arr              =>', arr); // Int32Array(5) [ 42, 1729, 0, 0, 0 ]
