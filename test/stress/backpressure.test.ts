/**
 * Backpressure: a sender pushing 1 GiB (× STRESS_SCALE) with a
 * loop of `await conn.sendBytes(...)` to a reader that reads slowly keeps its
 * own memory growth under 256 MB, and the reader receives every byte, in
 * order and intact. Sender and reader are separate child processes, so each
 * one's RSS is its own; the reader's inbox is bounded too (it pauses the
 * transport above 1 MiB of unread messages).
 */
import { expect } from 'chai';
import { within } from '../helpers/wire.js';
import { budget, runFixture, SCALE, seed } from './helpers.js';

const GiB = 1024 * 1024 * 1024;
const MB = 1_000_000;

describe('stress: backpressure', function () {
  this.timeout(budget(120_000));

  it(`a sender pushing ${SCALE} GiB to a slow reader grows by under 256 MB; the reader gets every byte`, async () => {
    const total = Math.round(GiB * SCALE);
    const runSeed = seed();
    const reader = runFixture('stress-bp-reader');
    let sender: ReturnType<typeof runFixture> | undefined;
    try {
      const address = await within(reader.line(), 30_000, 'the reader listening');
      sender = runFixture('stress-bp-sender', [address, String(total), String(runSeed)]);
      const sent = await within(sender.json<{ messages: number; bytes: number; rssGrowth: number }>(), budget(100_000), 'the sender');
      const got = await within(reader.json<{ messages: number; bytes: number; problems: string[]; rssGrowth: number }>(), 30_000, 'the reader');
      const [senderExit, readerExit] = await Promise.all([sender.exit(), reader.exit()]);
      expect(senderExit.code, senderExit.stderr).to.equal(0);
      expect(readerExit.code, readerExit.stderr).to.equal(0);
      const context = `seed ${runSeed}; sender grew ${(sent.rssGrowth / MB).toFixed(1)} MB, reader ${(got.rssGrowth / MB).toFixed(1)} MB`;
      if (process.env.STRESS_VERBOSE) console.log(context, sent, got.messages);
      expect(sent.bytes, context).to.equal(total);
      expect(got.problems, context).to.deep.equal([]);
      expect(got.messages, context).to.equal(sent.messages);
      expect(got.bytes, context).to.equal(total);
      expect(sent.rssGrowth, context).to.be.below(256 * MB);
      expect(got.rssGrowth, context).to.be.below(256 * MB);
    } finally {
      sender?.kill();
      reader.kill();
    }
  });
});
