# The Python docs' "Using a remote manager", a client getting from the queue,
# unmodified except for the address, which it takes from the command line
# (the Node server in node-server.ts holds the queue). Gets until 'STOP'.
#
#   python python-consumer.py 127.0.0.1 50000
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue')
m = QueueManager(address=(sys.argv[1], int(sys.argv[2])), authkey=b'abracadabra')
m.connect()
queue = m.get_queue()
while True:
    item = queue.get()  # blocks until the producer puts
    if item == 'STOP':
        break
    print('consumer: got %r' % (item,), flush=True)
