# The Python docs' "Using a remote manager", a client putting into the queue,
# unmodified except for the address, which it takes from the command line
# (the Node server in node-server.ts holds the queue).
#
#   python python-producer.py 127.0.0.1 50000
import sys
from multiprocessing.managers import BaseManager


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue')
m = QueueManager(address=(sys.argv[1], int(sys.argv[2])), authkey=b'abracadabra')
m.connect()
queue = m.get_queue()
for item in ['hello', (1, 2.5), {'from': 'python'}, 'STOP', 'for node']:
    queue.put(item)
print('producer: put 5 items', flush=True)
