/**
 * One long-lived CPython process per version that plays the Python side of
 * the authentication interop scenarios, so a whole matrix costs one
 * interpreter start per version. Node writes one JSON command per line on its
 * stdin; it answers with JSON event lines and ends each command with
 * `{"event": "done"}`.
 *
 * Commands (keys are hex, `null` means no authkey):
 * - `serve {authkey, send?, echo?}`: a `Listener(('127.0.0.1', 0), authkey)`;
 *   events `listening {port}`, `accept {ok} | {error, message}`, then the conversation.
 * - `connect {port, authkey, send?, echo?}`: `Client(('127.0.0.1', port), authkey)`;
 *   events `connect {ok} | {error, message}`, then the conversation.
 * - `challenges {port, authkey, steps}`: `Client` without a key, then each step
 *   (`answer`, `deliver`, `deliver:<digest>`) as a module-level
 *   `answer_challenge` / `deliver_challenge` call; event `step {name, ok} | {name, error, message}`
 *   per step, stopping at the first failure.
 *
 * The conversation: send each `send` message, then receive until the end,
 * reporting `message {hex}` for each one (and replying `b'echo:' + msg` when
 * `echo`), and `end {error, message}` with the exception class that ended it
 * (`EOFError` when the peer closed).
 */
import type { Python, PythonProcess } from './python.js';
import { runPython } from './python.js';

const AGENT = String.raw`
import binascii, json, os, sys, threading
from multiprocessing.connection import Client, Listener
import multiprocessing.connection as mc

def emit(event, **fields):
    fields['event'] = event
    sys.stdout.write(json.dumps(fields) + '\n')
    sys.stdout.flush()

def key(k):
    return None if k is None else binascii.unhexlify(k)

def failure(e):
    return {'error': type(e).__name__, 'message': str(e)}

def converse(c, cmd):
    try:
        for h in cmd.get('send', []):
            c.send_bytes(binascii.unhexlify(h))
        while True:
            if not c.poll(cmd.get('wait', 15)):
                emit('end', error='timeout', message='nothing received')
                break
            msg = c.recv_bytes()
            emit('message', hex=binascii.hexlify(msg).decode('ascii'))
            if cmd.get('echo'):
                c.send_bytes(b'echo:' + msg)
    except Exception as e:
        emit('end', **failure(e))
    finally:
        c.close()

def serve(cmd):
    l = Listener(('127.0.0.1', 0), authkey=key(cmd['authkey']))
    # accept() must not wait forever if the Node side never connects; the
    # accepted socket is made blocking again by CPython itself.
    l._listener._socket.settimeout(15)
    emit('listening', port=l.address[1])
    try:
        try:
            c = l.accept()
        except Exception as e:
            emit('accept', **failure(e))
            return
        emit('accept', ok=True)
        converse(c, cmd)
    finally:
        l.close()

def connect(cmd):
    try:
        c = Client(('127.0.0.1', cmd['port']), authkey=key(cmd['authkey']))
    except Exception as e:
        emit('connect', **failure(e))
        return
    emit('connect', ok=True)
    converse(c, cmd)

def challenges(cmd):
    c = Client(('127.0.0.1', cmd['port']))
    k = key(cmd['authkey'])
    try:
        for step in cmd['steps']:
            try:
                if step == 'answer':
                    mc.answer_challenge(c, k)
                elif step == 'deliver':
                    mc.deliver_challenge(c, k)
                else:
                    mc.deliver_challenge(c, k, step.split(':', 1)[1])
            except Exception as e:
                emit('step', name=step, **failure(e))
                return
            emit('step', name=step, ok=True)
    finally:
        c.close()

OPS = {'serve': serve, 'connect': connect, 'challenges': challenges}

for line in sys.stdin:
    cmd = json.loads(line)
    # A scenario that hangs (a bug on either side) must not hang the test run.
    watchdog = threading.Timer(30, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    try:
        OPS[cmd['op']](cmd)
    except Exception as e:
        emit('crash', **failure(e))
    watchdog.cancel()
    emit('done')
`;

export interface AgentEvent {
  event: string;
  ok?: boolean;
  error?: string;
  message?: string;
  port?: number;
  hex?: string;
  name?: string;
}

/** One command in progress. */
export interface AgentRun {
  /** The next event; rejects if it is not named `event` (when given). */
  next(event?: string): Promise<AgentEvent>;
  /** Every remaining event up to (not including) `done`. */
  rest(): Promise<AgentEvent[]>;
}

export interface PythonAgent {
  readonly py: Python;
  run(op: 'serve' | 'connect' | 'challenges', args: Record<string, unknown>): AgentRun;
  /** Reads a command a failed test left unfinished to its end (use in afterEach). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

const LINE_TIMEOUT = 20_000;

export function hex(bytes: Uint8Array | string): string {
  return Buffer.from(bytes).toString('hex');
}

export function text(event: AgentEvent): string {
  return Buffer.from(event.hex ?? '', 'hex').toString('latin1');
}

export function startAgent(py: Python): PythonAgent {
  const proc: PythonProcess = runPython(py, AGENT);
  let current: AgentRun | null = null;
  const line = async (): Promise<AgentEvent> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        proc.kill();
        reject(new Error(`python ${py.version} agent printed nothing for ${LINE_TIMEOUT} ms; killed`));
      }, LINE_TIMEOUT);
    });
    try {
      return JSON.parse(await Promise.race([proc.line(), timeout])) as AgentEvent;
    } finally {
      clearTimeout(timer);
    }
  };
  return {
    py,
    run(op, args) {
      if (current !== null) throw new Error('the agent runs one command at a time: read the previous one to its end first');
      proc.process.stdin!.write(JSON.stringify({ op, ...args }) + '\n');
      let finished = false;
      const next = async (event?: string): Promise<AgentEvent> => {
        if (finished) throw new Error('the command is done');
        const e = await line();
        if (e.event === 'done') {
          finished = true;
          current = null;
        }
        if (e.event === 'crash') throw new Error(`python ${py.version} agent: ${e.error}: ${e.message}`);
        if (event !== undefined && e.event !== event) {
          throw new Error(`python ${py.version}: expected event ${event}, got ${JSON.stringify(e)}`);
        }
        return e;
      };
      current = {
        next,
        async rest() {
          const events: AgentEvent[] = [];
          while (!finished) {
            const e = await next();
            if (e.event !== 'done') events.push(e);
          }
          return events;
        },
      };
      return current;
    },
    async settle() {
      while (current !== null) {
        try {
          await current.next();
        } catch {
          // a crash event is followed by done; a dead or killed agent ends it all
          if (proc.process.exitCode !== null || proc.process.signalCode !== null) current = null;
        }
      }
    },
    async close() {
      proc.process.stdin!.end();
      const exited = proc.exit();
      const timer = setTimeout(() => proc.kill(), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
