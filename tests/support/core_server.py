"""The router served by ``aiowsgi._core.Server`` itself, below the Python layer, with a
heartbeat buffer: the test of the core's heartbeat runs it as
``python -m tests.support.core_server HEARTBEAT_FILE`` (8 bytes, mapped shared, so the test
reads what the core writes).  Prints the start-up line of tests/support/serve.py; SIGTERM
stops it."""

import mmap
import signal
import socket
import sys

from aiowsgi import _core
from tests.support import apps
from tests.support.serve import announce


def main(heartbeat_path):
    with open(heartbeat_path, "r+b") as f:
        heartbeat = mmap.mmap(f.fileno(), 8)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    core = _core.Server(apps.router, [sock.fileno()], heartbeat=heartbeat)
    signal.signal(signal.SIGTERM, lambda *_: core.stop())
    announce("127.0.0.1:%d" % sock.getsockname()[1])
    core.run()


if __name__ == "__main__":
    main(sys.argv[1])
