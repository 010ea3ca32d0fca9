"""A Python worker for mpconn's spawn(): the standard library only.

The Node parent started this process with its connection on file descriptor 3
(spawn({ command: 'python3', args: ['worker.py'] })). It speaks the protocol of
examples/pool/pool.ts, pickled: a task is (id, function name, [args, ...]),
one call per argument list; the reply is (id, True, [results]) or
(id, False, 'ExceptionName: message').
"""
import math
import os
import time
from multiprocessing.connection import Connection

state = {'label': None}


def init(label):
    """The pool's initializer: runs once in each worker before its first task."""
    state['label'] = label


def factorial(n):
    return math.factorial(n)  # beyond 2**53 it reaches Node as a bigint


def stats(values):
    return {'n': len(values), 'mean': sum(values) / len(values), 'distinct': set(values), 'label': state['label']}


def pid(seconds=0):
    time.sleep(seconds)  # a task that takes a while, so that every worker gets some
    return os.getpid()


FUNCTIONS = {'init': init, 'factorial': factorial, 'stats': stats, 'pid': pid}


def main():
    conn = Connection(3)
    while True:
        try:
            task_id, name, args_list = conn.recv()
        except (EOFError, OSError):  # the parent closed the connection (no more tasks) or is gone
            break
        try:
            if name not in FUNCTIONS:
                raise ValueError('unknown function: %r' % (name,))
            conn.send((task_id, True, [FUNCTIONS[name](*args) for args in args_list]))
        except Exception as e:
            conn.send((task_id, False, '%s: %s' % (type(e).__name__, e)))
    conn.close()


if __name__ == '__main__':
    main()
