/**
 * The serializers a Connection sends and receives with: msgpack (the default),
 * json and a custom `{ encode, decode }`, and how decoding failures reach the caller.
 */
import { expect } from 'chai';
import { Pipe, type Serializer } from 'mpconn';
import { expectProtocol, pipes } from './helpers/connections.js';
import { rejectionOf } from './helpers/wire.js';

describe('Connection', () => {
  const pipe = pipes();

  describe('serializers', () => {
    describe('msgpack (default)', () => {
      it('round-trips integers that need 64 bits exactly: a number when safe, else a bigint', async () => {
        const [a, b] = await pipe();
        const values = [
          2n ** 63n - 1n,
          -(2n ** 63n),
          2n ** 64n - 1n,
          2n ** 53n,
          -(2n ** 53n) - 1n,
          5n,
          -5n,
          Number.MAX_SAFE_INTEGER,
          Number.MIN_SAFE_INTEGER,
          2 ** 32,
          -(2 ** 31) - 1,
        ];
        await a.send(values);
        expect(await b.recv()).to.deep.equal([
          2n ** 63n - 1n,
          -(2n ** 63n),
          2n ** 64n - 1n,
          2n ** 53n,
          -(2n ** 53n) - 1n,
          5,
          -5,
          Number.MAX_SAFE_INTEGER,
          Number.MIN_SAFE_INTEGER,
          2 ** 32,
          -(2 ** 31) - 1,
        ]);
      });

      it('encodes bigints as msgpack integers (uint64 / int64 on the wire)', async () => {
        const [a, b] = await pipe();
        await a.send(2n ** 64n - 1n);
        expect((await b.recvBytes()).toString('hex')).to.equal('cf' + 'ff'.repeat(8));
        await a.send(-(2n ** 63n));
        expect((await b.recvBytes()).toString('hex')).to.equal('d3' + '80' + '00'.repeat(7));
        await a.send(7n);
        expect((await b.recvBytes()).toString('hex')).to.equal('07');
      });

      it('decodes wide integer encodings of small values as numbers', async () => {
        const [a, b] = await pipe();
        await a.sendBytes(Buffer.from('cf0000000000000005', 'hex'));
        await a.sendBytes(Buffer.from('d3fffffffffffffffb', 'hex'));
        expect(await b.recv()).to.equal(5);
        expect(await b.recv()).to.equal(-5);
      });

      it('rejects a bigint outside 64 bits with RangeError and sends nothing', async () => {
        const [a, b] = await pipe();
        expect(await rejectionOf(a.send(2n ** 64n))).to.be.instanceOf(RangeError);
        expect(await rejectionOf(a.send([-(2n ** 63n) - 1n]))).to.be.instanceOf(RangeError);
        await a.send('fine');
        expect(await b.recv()).to.equal('fine');
      });

      it('encodes a Map as a msgpack map with its own keys, at every size', async () => {
        const [a, b] = await pipe();
        await a.send(new Map<unknown, unknown>([['a', 1], [2, 'b']]));
        expect((await b.recvBytes()).toString('hex')).to.equal('82' + 'a161' + '01' + '02' + 'a162');
        await a.send({ nested: [new Map([['k', new Map([['deep', true]])]])] });
        expect(await b.recv()).to.deep.equal({ nested: [{ k: { deep: true } }] });
        for (const size of [15, 16, 0xffff, 0x10000]) {
          const m = new Map(Array.from({ length: size }, (_, i) => [`k${i}`, i]));
          await a.send(m);
          const got = (await b.recv()) as Record<string, number>;
          expect(Object.keys(got).length, `size ${size}`).to.equal(size);
          expect(got[`k${size - 1}`]).to.equal(size - 1);
        }
      });

      it('encodes a Set as an array', async () => {
        const [a, b] = await pipe();
        await a.send(new Set([3, 'x', null]));
        expect(await b.recv()).to.deep.equal([3, 'x', null]);
      });

      it('turns undecodable bytes into ProtocolError ERR_DECODE carrying the bytes; the connection stays usable', async () => {
        const [a, b] = await pipe();
        for (const bad of [Buffer.from([0xc1]), Buffer.from('9301', 'hex'), Buffer.from('0102', 'hex')]) {
          await a.sendBytes(bad);
          const err = await rejectionOf(b.recv());
          expectProtocol(err, 'ERR_DECODE');
          expect(Buffer.isBuffer(err.data)).to.equal(true);
          expect((err.data as Buffer).equals(bad)).to.equal(true);
          await a.send({ still: 'works' });
          expect(await b.recv()).to.deep.equal({ still: 'works' });
        }
        expect(b.readable).to.equal(true);
      });
    });

    describe('json', () => {
      it('puts UTF-8 JSON on the wire and reads it back', async () => {
        const [a, b] = await pipe(true, { serializer: 'json' });
        await a.send({ text: 'héllo ✓', n: [1, 2.5, null] });
        const bytes = await b.recvBytes();
        expect(bytes.toString('utf8')).to.equal(JSON.stringify({ text: 'héllo ✓', n: [1, 2.5, null] }));
        await a.sendBytes(Buffer.from('{"from":"python"}'));
        expect(await b.recv()).to.deep.equal({ from: 'python' });
      });

      it('turns invalid JSON or invalid UTF-8 into ERR_DECODE with the bytes; the connection stays usable', async () => {
        const [a, b] = await pipe(true, { serializer: 'json' });
        for (const bad of [Buffer.from('{nope'), Buffer.from([0x22, 0xff, 0x22])]) {
          await a.sendBytes(bad);
          const err = await rejectionOf(b.recv());
          expectProtocol(err, 'ERR_DECODE');
          expect((err.data as Buffer).equals(bad)).to.equal(true);
        }
        await a.send([true]);
        expect(await b.recv()).to.deep.equal([true]);
      });
    });

    describe('custom', () => {
      it('uses the given encode and decode', async () => {
        const upper: Serializer = {
          encode: (v) => Buffer.from(String(v).toUpperCase()),
          decode: (bytes) => `decoded:${Buffer.from(bytes).toString()}`,
        };
        const [a, b] = await pipe(true, { serializer: upper });
        await a.send('shout');
        const raw = await b.recvBytes();
        expect(raw.toString()).to.equal('SHOUT');
        await a.send('again');
        expect(await b.recv()).to.equal('decoded:AGAIN');
      });

      it('passes a decode failure to the caller and keeps the connection usable', async () => {
        let calls = 0;
        const picky: Serializer = {
          encode: (v) => Buffer.from(String(v)),
          decode: (bytes) => {
            calls++;
            const s = Buffer.from(bytes).toString();
            if (s === 'bad') throw new SyntaxError('bad input');
            return s;
          },
        };
        const [a, b] = await pipe(true, { serializer: picky });
        await a.send('bad');
        await a.send('good');
        expect(await rejectionOf(b.recv())).to.be.instanceOf(Error);
        expect(await b.recv()).to.equal('good');
        expect(calls).to.equal(2);
      });

      it('rejects an unknown serializer name or an object without encode/decode with TypeError', async () => {
        expect(await rejectionOf(Pipe(true, { serializer: 'xml' as 'json' }))).to.be.instanceOf(TypeError);
        expect(await rejectionOf(Pipe(true, { serializer: { encode: () => new Uint8Array() } as unknown as Serializer }))).to.be.instanceOf(
          TypeError,
        );
      });
    });
  });
});
