# The Python docs' "Using a remote manager", server side, unmodified except
# that it can take the port from the command line (0: any free port) and prints
# the address it serves on, so the Node side knows where to connect.
#
#   python python-server.py 50000
import sys
from multiprocessing.managers import BaseManager
from queue import Queue

queue = Queue()


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue', callable=lambda: queue)

port = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
m = QueueManager(address=('127.0.0.1', port), authkey=b'abracadabra')
s = m.get_server()
print('serving on %s:%d' % s.address, flush=True)
s.serve_forever()
