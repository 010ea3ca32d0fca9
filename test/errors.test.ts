/** The error classes a Connection rejects with: their names, codes and common base. */
import { expect } from 'chai';
import { MpconnError } from 'mpconn';
import { pipes } from './helpers/connections.js';
import { rejectionOf } from './helpers/wire.js';

describe('Connection', () => {
  const pipe = pipes();

  describe('errors', () => {
    it('each error class extends MpconnError, is named after itself and carries a stable code', async () => {
      const [a, b] = await pipe();
      await a.sendBytes(Buffer.alloc(10));
      const tooShort = await rejectionOf(b.recvBytesInto(new Uint8Array(2)));
      await b.close();
      const closed = await rejectionOf(b.recv());
      const eof = await rejectionOf(a.recv());
      for (const [err, name, code] of [
        [tooShort, 'BufferTooShort', 'ERR_BUFFER_TOO_SHORT'],
        [closed, 'ConnectionStateError', 'ERR_CLOSED'],
        [eof, 'EOFError', 'ERR_EOF'],
      ] as const) {
        expect(err).to.be.instanceOf(MpconnError);
        expect(err).to.be.instanceOf(Error);
        expect(err.name).to.equal(name);
        expect(err.code).to.equal(code);
        expect(err.message).to.be.a('string').that.is.not.empty;
      }
    });
  });
});
