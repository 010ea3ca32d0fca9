import { expect } from 'chai';
import net from 'node:net';
import { Client, Connection, Listener, Pipe, spawn } from 'mpconn';
import { cancelOptions, ConnectionSettings, queueLength, timeoutOr, transportFamily } from '../src/internal.js';
import { rejectionOf } from './helpers/wire.js';

describe('option resolvers', () => {
  describe('ConnectionSettings', () => {
    it('fills in the defaults: the platform\'s Buffer limit as maxMessageSize', async () => {
      const { constants } = await import('node:buffer');
      expect(new ConnectionSettings({}).maxMessageSize).to.equal(constants.MAX_LENGTH);
      expect(new ConnectionSettings({ maxMessageSize: 10 }).maxMessageSize).to.equal(10);
    });

    it('gives every connection made from it a serializer of its own', () => {
      const settings = new ConnectionSettings({ serializer: 'msgpack' });
      const first = settings.newSerializer();
      const second = settings.newSerializer();
      expect(first).to.not.equal(second);
      // Each one works on its own: msgpack lends its encoder's buffer, so a shared one would overwrite the other's output.
      const a = Buffer.from(first.encode('first'));
      const b = Buffer.from(second.encode('second'));
      expect(first.decode(a)).to.equal('first');
      expect(second.decode(b)).to.equal('second');
    });

    it('checks every value when it is made, with the same errors at every entry point', async () => {
      const bad: [object, RegExp][] = [
        [{ serializer: 'yaml' }, /serializer must be/],
        [{ maxMessageSize: -1 }, /maxMessageSize is negative/],
        [{ maxDepth: 0 }, /maxDepth must be a positive integer or Infinity/],
      ];
      for (const [options, message] of bad) {
        expect(() => new ConnectionSettings(options)).to.throw(message);
        expect(() => Connection.fromStream(new net.Socket(), options)).to.throw(message);
        expect((await rejectionOf(Pipe(true, options))).message).to.match(message);
        expect((await rejectionOf(Client(['127.0.0.1', 1], options))).message).to.match(message);
        expect((await rejectionOf(Listener.listen(['127.0.0.1', 0], options))).message).to.match(message);
        expect(() => spawn('nonexistent.js', [], options)).to.throw(message);
      }
    });
  });

  describe('cancelOptions and timeoutOr', () => {
    it('read null (Python\'s None) and Infinity as no limit, and a left-out timeout as the fallback', () => {
      expect(cancelOptions({}).timeout).to.equal(undefined);
      expect(cancelOptions({ timeout: null }).timeout).to.equal(undefined);
      expect(cancelOptions({}, 20_000).timeout).to.equal(20_000);
      expect(cancelOptions({ timeout: null }, 20_000).timeout).to.equal(Infinity);
      expect(cancelOptions({ timeout: -5 }, 20_000).timeout).to.equal(0);
      expect(timeoutOr(undefined, 30_000)).to.equal(30_000);
      expect(timeoutOr(null, 30_000)).to.equal(Infinity);
      expect(timeoutOr(Infinity, 30_000)).to.equal(Infinity);
    });

    it('reject a signal that is not an AbortSignal and a timeout that is not a number', () => {
      expect(() => cancelOptions({ signal: {} })).to.throw(TypeError, /signal must be an AbortSignal/);
      expect(() => cancelOptions({ timeout: '5' })).to.throw(TypeError, /timeout must be a number of milliseconds/);
      expect(() => timeoutOr(NaN, 1, 'authTimeout')).to.throw(RangeError, /authTimeout must not be NaN/);
    });
  });

  describe('queueLength', () => {
    it('takes a non-negative integer and names the option in its errors', () => {
      expect(queueLength(undefined, 'backlog')).to.equal(undefined);
      expect(queueLength(0, 'backlog')).to.equal(0);
      expect(() => queueLength(1.5, 'backlog')).to.throw(RangeError, /backlog must be an integer/);
      expect(() => queueLength(-1, 'maxPending')).to.throw(RangeError, /maxPending is negative/);
    });
  });

  describe('transportFamily', () => {
    it('takes the family when the address is of it, and refuses an address of another family or tls off AF_INET', () => {
      expect(transportFamily(['localhost', 6000], 'AF_INET', { ca: 'x' })).to.equal('AF_INET');
      expect(transportFamily('/tmp/s', 'AF_UNIX', undefined)).to.equal('AF_UNIX');
      expect(() => transportFamily('/tmp/s', 'AF_INET', undefined)).to.throw(TypeError, /is not an AF_INET address/);
      expect(() => transportFamily('/tmp/s', 'AF_UNIX', {})).to.throw(TypeError, /tls is only available with AF_INET/);
      expect(() => transportFamily('/tmp/s', 'AF_BOGUS', undefined)).to.throw(TypeError, /family must be one of/);
    });

    it('is what Listener.listen and Client both check', async () => {
      const message = /tls is only available with AF_INET/;
      expect((await rejectionOf(Listener.listen(null, { tls: {} }))).message).to.match(message);
      expect((await rejectionOf(Client('/tmp/nowhere.sock', { tls: {} }))).message).to.match(message);
    });
  });
});
