/**
 * The authentication handshake against real CPython peers: every CPython 3.x
 * found (3.6-3.13 through pyenv on these machines), in both roles, with the
 * right key, a wrong key, and a key on one side only. One Python process per
 * version plays every scenario (see helpers/auth-python.ts).
 */
import { once } from 'node:events';
import { expect } from 'chai';
import {
  answerChallenge,
  AuthenticationError,
  Client,
  type Connection,
  deliverChallenge,
  Listener,
} from 'mpconn';
import { hex, startAgent, text, type AgentEvent, type PythonAgent } from './helpers/auth-python.js';
import { DIGESTS } from './helpers/auth-raw.js';
import { forEachPython } from './helpers/python.js';
import { rejectionOf as rejection, within } from './helpers/wire.js';

const KEY = 'interop secret ✓';
const KEY_HEX = hex(KEY);
const OTHER_HEX = hex('some other secret');
const LOCALHOST: [string, number] = ['127.0.0.1', 0];

function nextHandshakeError(listener: Listener): Promise<[Error, unknown]> {
  return within(once(listener, 'handshakeError') as Promise<[Error, unknown]>, 10_000, "'handshakeError'");
}

/** What the Python side printed, as `event` or `event:Error` or `message:<text>`. */
function story(events: AgentEvent[]): string[] {
  return events.map((e) =>
    e.event === 'message' ? `message:${text(e)}` : e.error !== undefined ? `${e.event}:${e.error}` : e.event,
  );
}

describe('interop: authentication with CPython', function () {
  this.timeout(30_000);

  forEachPython(undefined, (py) => {
    describe(`CPython ${py.version}`, () => {
      let agent: PythonAgent;
      let listener: Listener | undefined;
      const conns: Connection[] = [];
      before(() => {
        agent = startAgent(py);
      });
      afterEach(async () => {
        await Promise.all(conns.splice(0).map((c) => c.close()));
        await listener?.close();
        listener = undefined;
        await agent.settle();
      });
      after(async () => agent?.close());

      describe('Python Listener ↔ mpconn Client', () => {
        it('with the right key: authenticated, and messages flow both ways', async () => {
          const run = agent.run('serve', { authkey: KEY_HEX, send: [hex('hello from python')], echo: true });
          const { port } = await run.next('listening');
          const conn = await Client(['127.0.0.1', port!], { authkey: KEY, timeout: 10_000 });
          conns.push(conn);
          expect((await conn.recvBytes()).toString()).to.equal('hello from python');
          await conn.sendBytes(Buffer.from('ping from node'));
          expect((await conn.recvBytes()).toString()).to.equal('echo:ping from node');
          await conn.close();
          expect(story(await run.rest())).to.deep.equal(['accept', 'message:ping from node', 'end:EOFError']);
        });

        it('with a wrong key: Client() rejects with AuthenticationError, and Python accept() raises AuthenticationError', async () => {
          const run = agent.run('serve', { authkey: OTHER_HEX });
          const { port } = await run.next('listening');
          const err = await rejection(Client(['127.0.0.1', port!], { authkey: KEY, timeout: 10_000 }));
          expect(err).to.be.instanceOf(AuthenticationError);
          expect(err.message).to.match(/rejected/);
          const accepted = await run.next('accept');
          expect(accepted.error).to.equal('AuthenticationError');
          expect(accepted.message).to.match(/digest received was wrong/);
          await run.rest();
        });

        it('with a key on the mpconn Client only: AuthenticationError "no challenge received" within its timeout', async () => {
          const run = agent.run('serve', { authkey: null });
          const { port } = await run.next('listening');
          const err = await within(
            rejection(Client(['127.0.0.1', port!], { authkey: KEY, timeout: 500 })),
            10_000,
            'Client()',
          );
          expect(err).to.be.instanceOf(AuthenticationError);
          expect(err.message).to.match(/no challenge received/);
          expect(err.message).to.match(/without an authkey/);
          // Python accepted a connection that sent nothing and was then closed
          expect(story(await run.rest())).to.deep.equal(['accept', 'end:EOFError']);
        });

        it("with a key on the Python Listener only: the mpconn Client's first recv() rejects with an AuthenticationError hint", async () => {
          const run = agent.run('serve', { authkey: KEY_HEX });
          const { port } = await run.next('listening');
          const conn = await Client(['127.0.0.1', port!]);
          conns.push(conn);
          await conn.sendBytes(Buffer.from('hello, no key'));
          const err = await rejection(conn.recv({ timeout: 10_000 }));
          expect(err).to.be.instanceOf(AuthenticationError);
          expect(err.message).to.match(/requires an authkey/);
          const accepted = await run.next('accept');
          expect(accepted.error).to.equal('AuthenticationError');
          await run.rest();
        });

        if (py.minor >= 13) {
          it("with the empty key b'' (a key since 3.13): authenticated", async () => {
            const run = agent.run('serve', { authkey: '', echo: true });
            const { port } = await run.next('listening');
            const conn = await Client(['127.0.0.1', port!], { authkey: '', timeout: 10_000 });
            conns.push(conn);
            await conn.sendBytes(Buffer.from('empty key'));
            expect((await conn.recvBytes()).toString()).to.equal('echo:empty key');
            await conn.close();
            expect(story(await run.rest())).to.deep.equal(['accept', 'message:empty key', 'end:EOFError']);
          });
        } else {
          it("with the empty key b'' (no key at all to a Listener before 3.13): the Client's error says no challenge came", async () => {
            const run = agent.run('serve', { authkey: '' });
            const { port } = await run.next('listening');
            const err = await rejection(Client(['127.0.0.1', port!], { authkey: '', timeout: 500 }));
            expect(err).to.be.instanceOf(AuthenticationError);
            expect(err.message).to.match(/no challenge received/);
            expect(story(await run.rest())).to.deep.equal(['accept', 'end:EOFError']);
          });
        }
      });

      describe('mpconn Listener ↔ Python Client', () => {
        it('with the right key: authenticated, and messages flow both ways', async () => {
          listener = await Listener.listen(LOCALHOST, { authkey: KEY });
          const [, port] = listener.address as [string, number];
          const run = agent.run('connect', { port, authkey: KEY_HEX, send: [hex('hello from python')], echo: true });
          const conn = await listener.accept({ timeout: 10_000 });
          conns.push(conn);
          expect((await run.next('connect')).ok).to.equal(true);
          expect((await conn.recvBytes()).toString()).to.equal('hello from python');
          await conn.sendBytes(Buffer.from('ping from node'));
          expect((await conn.recvBytes()).toString()).to.equal('echo:ping from node');
          await conn.close();
          expect(story(await run.rest())).to.deep.equal(['message:ping from node', 'end:EOFError']);
        });

        it("with a wrong key: 'handshakeError' with AuthenticationError, and Python Client() raises AuthenticationError", async () => {
          listener = await Listener.listen(LOCALHOST, { authkey: KEY });
          const reported = nextHandshakeError(listener);
          const [, port] = listener.address as [string, number];
          const run = agent.run('connect', { port, authkey: OTHER_HEX });
          const [err, peer] = await reported;
          expect(err).to.be.instanceOf(AuthenticationError);
          expect(peer).to.be.an('array');
          const connected = await run.next('connect');
          expect(connected.error).to.equal('AuthenticationError');
          expect(connected.message).to.match(/digest sent was rejected/);
          await run.rest();
        });

        it("with a key on the Python Client only: Python waits for a challenge that never comes, and sees EOFError once mpconn closes", async () => {
          listener = await Listener.listen(LOCALHOST);
          const [, port] = listener.address as [string, number];
          const run = agent.run('connect', { port, authkey: KEY_HEX });
          const conn = await listener.accept({ timeout: 10_000 });
          // blocked in answer_challenge, as CPython does: it sends nothing
          expect(await conn.poll(300)).to.equal(false);
          await conn.close();
          const connected = await run.next('connect');
          expect(connected.error).to.equal('EOFError');
          await run.rest();
        });

        it("with a key on the mpconn Listener only: 'handshakeError', and Python received the challenge and #FAILURE#", async () => {
          listener = await Listener.listen(LOCALHOST, { authkey: KEY });
          const reported = nextHandshakeError(listener);
          const [, port] = listener.address as [string, number];
          const run = agent.run('connect', { port, authkey: null, send: [hex('hello from python, no key')] });
          expect((await run.next('connect')).ok).to.equal(true);
          const [err] = await reported;
          expect(err).to.be.instanceOf(AuthenticationError);
          const events = await run.rest();
          const said = story(events);
          expect(said[0]).to.match(/^message:#CHALLENGE#\{sha256\}/);
          expect(said.slice(1)).to.deep.equal(['message:#FAILURE#', 'end:EOFError']);
        });

        it("with the empty key b'': authenticated (a Python Client treats b'' as a key)", async () => {
          listener = await Listener.listen(LOCALHOST, { authkey: new Uint8Array(0) });
          const [, port] = listener.address as [string, number];
          const run = agent.run('connect', { port, authkey: '', send: [hex('empty')] });
          const conn = await listener.accept({ timeout: 10_000 });
          conns.push(conn);
          expect((await run.next('connect')).ok).to.equal(true);
          expect((await conn.recvBytes()).toString()).to.equal('empty');
          await conn.close();
          expect(story(await run.rest())).to.deep.equal(['end:EOFError']);
        });
      });

      describe('deliverChallenge / answerChallenge with a Python peer', () => {
        /** A Python Client without a key on a fresh mpconn Listener without one, running `steps`. */
        async function pythonSteps(steps: string[], authkeyHex = KEY_HEX) {
          listener = await Listener.listen(LOCALHOST);
          const [, port] = listener.address as [string, number];
          const run = agent.run('challenges', { port, authkey: authkeyHex, steps });
          const conn = await listener.accept({ timeout: 10_000 });
          conns.push(conn);
          return { run, conn };
        }

        if (py.minor >= 12) {
          for (const digest of DIGESTS) {
            it(`deliverChallenge with ${digest} is answered by answer_challenge, and answerChallenge answers deliver_challenge(digest_name='${digest}')`, async () => {
              const { run, conn } = await pythonSteps(['answer', `deliver:${digest}`]);
              await deliverChallenge(conn, KEY, digest);
              expect(await run.next('step')).to.include({ name: 'answer', ok: true });
              await answerChallenge(conn, KEY);
              expect(await run.next('step')).to.include({ name: `deliver:${digest}`, ok: true });
              await run.rest();
            });
          }
        } else {
          it('answerChallenge answers a legacy deliver_challenge (20-byte challenge, raw HMAC-MD5)', async () => {
            const { run, conn } = await pythonSteps(['deliver']);
            await answerChallenge(conn, KEY);
            expect(await run.next('step')).to.include({ name: 'deliver', ok: true });
            await run.rest();
          });

          for (const digest of DIGESTS) {
            it(`deliverChallenge with ${digest} accepts the raw HMAC-MD5 a legacy answer_challenge replies`, async () => {
              const { run, conn } = await pythonSteps(['answer']);
              await deliverChallenge(conn, KEY, digest);
              expect(await run.next('step')).to.include({ name: 'answer', ok: true });
              await run.rest();
            });
          }
        }

        it('with a wrong key, both sides report their AuthenticationError (Python answering)', async () => {
          const { run, conn } = await pythonSteps(['answer'], OTHER_HEX);
          expect(await rejection(deliverChallenge(conn, KEY))).to.be.instanceOf(AuthenticationError);
          expect(await run.next('step')).to.include({ name: 'answer', error: 'AuthenticationError' });
          await run.rest();
        });

        it('with a wrong key, both sides report their AuthenticationError (Python delivering)', async () => {
          const { run, conn } = await pythonSteps(['deliver'], OTHER_HEX);
          expect(await rejection(answerChallenge(conn, KEY))).to.be.instanceOf(AuthenticationError);
          expect(await run.next('step')).to.include({ name: 'deliver', error: 'AuthenticationError' });
          await run.rest();
        });
      });
    });
  });
});
