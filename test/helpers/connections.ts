/**
 * Connected pairs for tests that talk Connection to Connection, and the checks
 * of the error classes they reject with.
 */
import { expect } from 'chai';
import { ConnectionStateError, MpconnError, Pipe, ProtocolError, type Connection } from 'mpconn';

export type PipeOptions = Parameters<typeof Pipe>[1];

/**
 * Call inside a `describe`: returns a `Pipe()` whose ends are closed after
 * each test of that describe.
 */
export function pipes(): (duplex?: boolean, options?: PipeOptions) => Promise<[Connection, Connection]> {
  const open: Connection[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.close().catch(() => {})));
  });
  return async (duplex = true, options) => {
    const pair = await Pipe(duplex, options);
    open.push(...pair);
    return pair;
  };
}

export function expectState(err: unknown, code: string): void {
  expect(err).to.be.instanceOf(ConnectionStateError);
  expect(err).to.be.instanceOf(MpconnError);
  expect((err as ConnectionStateError).code).to.equal(code);
}

export function expectProtocol(err: unknown, code: string): void {
  expect(err).to.be.instanceOf(ProtocolError);
  expect(err).to.be.instanceOf(MpconnError);
  expect((err as ProtocolError).code).to.equal(code);
}
