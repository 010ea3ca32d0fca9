/**
 * Load: 200 concurrent authenticated clients, each sending 1,000
 * messages of random sizes (a 0 B-64 KiB random body behind a 12-byte
 * header that carries the client id, a sequence number and a CRC-32), into
 * one Listener in this process. In the same run 20 clients with a wrong key
 * knock, and 20 authenticated raw clients are SIGKILLed in the middle of a
 * frame. Every good message must arrive exactly once, intact and in order per
 * client; the bad clients must not disturb the good ones.
 *
 * The clients run in child processes (4 × 50 good + 5 wrong-key, 4 × 5
 * killed). Over TCP, scale 1 (`npm test`) is the full 200 × 1,000; a second
 * run goes over a Unix socket with a tiny backlog (200 × 200 at scale 1).
 * Message counts scale with STRESS_SCALE.
 */
import { expect } from 'chai';
import { AuthenticationError, Connection, EOFError, Listener, ProtocolError, type Address, type ListenerOptions } from 'mpconn';
import { within } from '../helpers/wire.js';
import { budget, checkMessage, runFixture, scaled, seed, type Child } from './helpers.js';

const PROCESSES = 4;
const GOOD_PER_PROCESS = 50;
const WRONG_KEY_PER_PROCESS = 5;
const KILLED_PER_PROCESS = 5;
const MESSAGES = scaled(1000);
const UNIX_MESSAGES = scaled(200);
const MAX_BODY = 64 * 1024;
const AUTHKEY = 'stress: the right key';

interface Served {
  kind: 'good' | 'killed';
  received: number;
  /** The first thing that was wrong with this client's stream, if anything. */
  problem: string | null;
  /** How the stream of a killed client ended. */
  end: unknown;
}

describe('stress: load', function () {
  this.timeout(budget(240_000));

  const runs: { over: string; address: Address | null; options: ListenerOptions; messages: number }[] = [
    { over: 'TCP', address: ['127.0.0.1', 0], options: {}, messages: MESSAGES },
    // A backlog of 8 against a burst of 240 connects: Clients wait for room, as Python's blocking connect() does.
    { over: 'a Unix socket with a backlog of 8', address: null, options: { family: 'AF_UNIX', backlog: 8 }, messages: UNIX_MESSAGES },
  ];
  for (const run of runs) it(`over ${run.over}: 200 clients × ${run.messages.toLocaleString('en')} checksummed messages arrive once and in order, while 20 wrong keys knock and 20 clients die mid-frame`, async () => {
    const MESSAGES = run.messages;
    const runSeed = seed();
    const listener = await Listener.listen(run.address, { ...run.options, authkey: AUTHKEY });
    const handshakeErrors: unknown[] = [];
    listener.on('handshakeError', (err) => handshakeErrors.push(err));
    const served = new Map<number, Served>();
    const serving: Promise<void>[] = [];
    let goodReceived = 0;

    const serve = async (conn: Connection): Promise<void> => {
      const hello = (await conn.recv()) as { id: number; kind: 'good' | 'killed'; messages?: number };
      const s: Served = { kind: hello.kind, received: 0, problem: null, end: null };
      if (served.has(hello.id)) s.problem = `client id ${hello.id} connected twice`;
      served.set(hello.id, s);
      try {
        if (hello.kind === 'good') {
          for (let seq = 0; seq < hello.messages!; seq++) {
            const problem = checkMessage(await conn.recvBytes(), hello.id, seq);
            if (problem !== null) {
              s.problem ??= problem;
              break;
            }
            s.received++;
            goodReceived++;
          }
          await conn.send({ id: hello.id, received: s.received });
          // Nothing after the last message: the next receive meets the end of stream.
          const extra = await conn.recvBytes().then(
            (msg) => `a message after the last one (${msg.length} bytes)`,
            (err: unknown) => (err instanceof EOFError ? null : `ended with ${String(err)}`),
          );
          if (extra !== null) s.problem ??= extra;
        } else {
          for (let seq = 0; ; seq++) {
            const problem = checkMessage(await conn.recvBytes(), hello.id, seq);
            if (problem !== null) {
              s.problem ??= problem;
              break;
            }
            s.received++;
          }
        }
      } catch (err) {
        if (hello.kind === 'good') s.problem ??= `failed: ${String(err)}`;
        s.end = err;
      } finally {
        await conn.close();
      }
    };
    const accepting = (async () => {
      for await (const conn of listener) serving.push(serve(conn).catch((err) => void (served.set(-1, { kind: 'good', received: 0, problem: String(err), end: err }))));
    })();

    const children: Child[] = [];
    try {
      const killers: Child[] = [];
      for (let p = 0; p < PROCESSES; p++) {
        killers.push(
          runFixture('stress-load-killed', [
            JSON.stringify({
              address: listener.address,
              authkey: AUTHKEY,
              firstId: 10_000 + p * KILLED_PER_PROCESS,
              clients: KILLED_PER_PROCESS,
              maxBody: MAX_BODY,
              seed: runSeed + p,
            }),
          ]),
        );
      }
      children.push(...killers);
      const clients: Child[] = [];
      for (let p = 0; p < PROCESSES; p++) {
        clients.push(
          runFixture('stress-load-clients', [
            JSON.stringify({
              address: listener.address,
              authkey: AUTHKEY,
              wrongKey: 'stress: a wrong key',
              firstId: p * GOOD_PER_PROCESS,
              clients: GOOD_PER_PROCESS,
              messages: MESSAGES,
              maxBody: MAX_BODY,
              wrongKeyClients: WRONG_KEY_PER_PROCESS,
              seed: runSeed + 100 + p,
            }),
          ]),
        );
      }
      children.push(...clients);

      // The killed clients are mid-frame; kill them while the good ones are a third of the way through.
      const killed: { id: number; complete: number; cut: number; length: number }[] = [];
      for (const k of killers) {
        for (;;) {
          const line = await within(k.line(), 60_000, 'a killed-client process getting ready');
          if (line === 'ready') break;
          killed.push(JSON.parse(line));
        }
      }
      const total = PROCESSES * GOOD_PER_PROCESS * MESSAGES;
      while (goodReceived < total / 3 && clients.every((c) => c.process.exitCode === null)) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      for (const k of killers) k.kill('SIGKILL');
      for (const k of killers) expect((await k.exit()).signal).to.equal('SIGKILL');

      const reports = await Promise.all(
        clients.map(async (c) => {
          const report = await within(c.json<{ done: number; wrongKeyRejected: number; failures: string[] }>(), budget(200_000), 'client process');
          const exit = await c.exit();
          expect(exit.code, exit.stderr).to.equal(0);
          return report;
        }),
      );
      await within(Promise.all(serving), 30_000, 'the listener finishing every connection');

      const context = `seed ${runSeed} (replay with STRESS_SEED=${runSeed})`;
      // Every good client, as the Listener saw it: all its messages, intact, in order, nothing more.
      const good = [...served.entries()].filter(([, s]) => s.kind === 'good');
      expect(good.filter(([, s]) => s.problem !== null).map(([id, s]) => `${id}: ${s.problem}`), context).to.deep.equal([]);
      expect(good.length, context).to.equal(PROCESSES * GOOD_PER_PROCESS);
      expect(good.every(([, s]) => s.received === MESSAGES), context).to.equal(true);
      expect(goodReceived).to.equal(total);

      // ...and as the clients saw it: every one acknowledged, every wrong key refused.
      expect(reports.flatMap((r) => r.failures), context).to.deep.equal([]);
      expect(reports.reduce((n, r) => n + r.done, 0), context).to.equal(PROCESSES * GOOD_PER_PROCESS);
      expect(reports.reduce((n, r) => n + r.wrongKeyRejected, 0), context).to.equal(PROCESSES * WRONG_KEY_PER_PROCESS);

      // Every killed client: the messages it completed, then ERR_TRUNCATED.
      expect(killed).to.have.length(PROCESSES * KILLED_PER_PROCESS);
      for (const k of killed) {
        const s = served.get(k.id);
        expect(s, `killed client ${k.id} was served`).to.not.equal(undefined);
        expect(s!.problem, `killed client ${k.id}`).to.equal(null);
        expect(s!.received, `killed client ${k.id} completed ${k.complete} messages`).to.equal(k.complete);
        expect(s!.end, `killed client ${k.id} cut at ${k.cut} of ${k.length}`).to.be.instanceOf(ProtocolError);
        expect((s!.end as ProtocolError).code).to.equal('ERR_TRUNCATED');
      }

      // The wrong keys were seen and refused by the Listener, which kept serving.
      expect(handshakeErrors).to.have.length(PROCESSES * WRONG_KEY_PER_PROCESS);
      for (const err of handshakeErrors) expect(err).to.be.instanceOf(AuthenticationError);
    } finally {
      for (const c of children) c.kill();
      await listener.close();
      await accepting;
    }
  });
});
