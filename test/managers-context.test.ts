/**
 * `currentCall()` as a served object sees it: an object the Node program
 * registered reads its call before and after an `await`, and two client
 * connections are two owners; the SyncManager classes, which the server runs
 * with the caller known only for their synchronous part, still tell their
 * callers apart across a `Condition.wait`.
 */
import { expect } from 'chai';
import { currentCall, ManagerClient, ManagerServer, SharedCondition, SharedRLock, type CallContext } from '../src/index.js';
import { rejectionOf } from './helpers/wire.js';

const KEY = 'manager-context-test-key';

describe('managers: the call context', function () {
  this.timeout(20_000);
  let server: ManagerServer | null = null;
  const managers: ManagerClient[] = [];
  afterEach(async () => {
    await Promise.all(managers.splice(0).map((m) => m.close()));
    await server?.close();
    server = null;
  });

  async function connect(): Promise<ManagerClient> {
    const manager = await ManagerClient.connect(server!.address, { authkey: KEY, maxConnections: 1 });
    managers.push(manager);
    return manager;
  }

  it("a registered object's async method reads its own call after an await, and each connection is its own owner", async () => {
    const seen: Array<{ before: CallContext | undefined; after: CallContext | undefined }> = [];
    const owners = new Map<object, number>();
    server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: KEY, sync: false });
    server.register('Probe', () => ({
      async look(tag: number): Promise<number> {
        const before = currentCall();
        await new Promise((resolve) => setTimeout(resolve, 5));
        await null;
        const after = currentCall();
        seen.push({ before, after });
        if (after !== undefined && !owners.has(after.owner)) owners.set(after.owner, tag);
        return owners.get(after!.owner)!;
      },
    }));
    const [a, b] = [await connect(), await connect()];
    const [pa, pb] = [await a.create('Probe'), await b.create('Probe')];
    // Interleaved: both calls are between their awaits at once.
    const results = await Promise.all([pa.look(1), pb.look(2), pa.look(3), pb.look(4)]);
    expect(results).to.deep.equal([1, 2, 1, 2]);
    expect(seen).to.have.length(4);
    for (const { before, after } of seen) {
      expect(before).to.not.equal(undefined);
      expect(after).to.equal(before);
      expect(after!.signal.aborted).to.equal(false);
    }
    expect(currentCall()).to.equal(undefined);
  });

  it("a SharedCondition's waiter takes the lock back as itself, so only it may release it", async () => {
    const shared = new SharedCondition();
    server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: KEY, registry: { get_cond: () => shared } });
    const waiter = await (await connect()).create('get_cond');
    const notifier = await (await connect()).create('get_cond');
    expect(await waiter.acquire()).to.equal(true);
    const waiting = waiter.wait(10);
    // The waiter released the lock while it waits: the other connection can take it and notify.
    expect(await notifier.acquire()).to.equal(true);
    await notifier.notify();
    await notifier.release();
    expect(await waiting).to.equal(true);
    // Back from wait() the waiter owns the lock again: the other connection may not release it, the waiter may.
    expect((await rejectionOf(notifier.release())).message).to.contain('cannot release un-acquired lock');
    expect(await notifier.acquire(false)).to.equal(false);
    await waiter.release();
    expect(await notifier.acquire(false)).to.equal(true);
    await notifier.release();
  });

  it('a subclass of a SyncManager class may await before calling the base method: the lock is still its caller\'s', async () => {
    class AuditedRLock extends SharedRLock {
      readonly log: string[] = [];
      override async acquire(...args: unknown[]): Promise<boolean> {
        await new Promise((resolve) => setTimeout(resolve, 5));
        this.log.push('acquire');
        return super.acquire(...args);
      }
    }
    const lock = new AuditedRLock();
    server = await ManagerServer.listen(['127.0.0.1', 0], { authkey: KEY, registry: { get_lock: () => lock } });
    const mine = await (await connect()).create('get_lock');
    const other = await (await connect()).create('get_lock');
    expect(await mine.acquire()).to.equal(true);
    expect(lock.log).to.deep.equal(['acquire']);
    // Owned by the connection that acquired it: the other one may neither take nor release it, the owner may.
    expect(await other.acquire(false)).to.equal(false);
    expect((await rejectionOf(other.release())).message).to.contain('cannot release un-acquired lock');
    await mine.release();
    expect(await other.acquire(false)).to.equal(true);
    await other.release();
  });
});
