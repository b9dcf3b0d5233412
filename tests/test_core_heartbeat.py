"""The core's heartbeat (``_core.Server(heartbeat=buffer)``, used by the master for
``--timeout``): while app code runs, the CLOCK_MONOTONIC time in ns at which that call began;
0 when no app code runs.  The buffer here is a file mapping, so the test reads the file."""

import struct
import sys
import time

import pytest

from tests.support import ROOT, RawClient, ServerProcess, unique_id, wait_for

CORE_SERVER = r"""
import mmap, signal, socket, sys
sys.path.insert(0, sys.argv[1])
from aiowsgi import _core
from tests import apps

with open(sys.argv[2], "r+b") as f:
    heartbeat = mmap.mmap(f.fileno(), 8)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
sock.setblocking(False)
core = _core.Server(apps.router, [sock.fileno()], heartbeat=heartbeat)
signal.signal(signal.SIGTERM, lambda *_: core.stop())
print("LISTENING 127.0.0.1 %d" % sock.getsockname()[1], flush=True)
core.run()
"""


class CoreServer(ServerProcess):
    """tests.apps:router served by ``_core.Server`` directly, with a file-backed heartbeat."""

    def __init__(self, heartbeat_path):
        super().__init__("tests.apps:router")
        self.heartbeat_path = heartbeat_path
        with open(heartbeat_path, "wb") as f:
            f.write(b"\xff" * 8)  # not 0: the core must write it

    @property
    def argv(self):
        return [sys.executable, "-c", CORE_SERVER, ROOT, self.heartbeat_path]

    def heartbeat(self):
        with open(self.heartbeat_path, "rb") as f:
            return struct.unpack("=Q", f.read(8))[0]


@pytest.fixture
def core_server(tmp_path):
    srv = CoreServer(str(tmp_path / "heartbeat")).start()
    yield srv
    alive = srv.alive()
    srv.stop()
    assert alive, srv.stderr()[-3000:]


def test_heartbeat_is_zero_while_idle(core_server):
    # The file starts as 0xff...: a 0 proves the core writes it (and that we see its writes).
    assert wait_for(lambda: core_server.heartbeat() == 0, timeout=5), core_server.heartbeat()


def test_heartbeat_holds_the_start_of_a_running_app_call(core_server):
    ident = unique_id()
    with RawClient(core_server.host, core_server.port) as c:
        before = time.monotonic_ns()
        c.request("GET", "/closing/?mode=normal&sleep=1&id=" + ident)
        assert core_server.wait_event(ident, "call")
        beat = core_server.heartbeat()
        assert before <= beat <= time.monotonic_ns(), (before, beat)
        time.sleep(0.3)
        assert core_server.heartbeat() == beat  # the same call: the same start time
        assert c.read_response().status == 200
    assert wait_for(lambda: core_server.heartbeat() == 0, timeout=5), core_server.heartbeat()


def test_heartbeat_is_zero_while_a_response_waits_for_a_slow_client(core_server):
    ident = unique_id()
    with RawClient(core_server.host, core_server.port, rcvbuf=65536) as c:
        c.request("GET", "/stream/?chunks=800&size=65536&id=" + ident)
        assert c.read_head().status == 200
        assert core_server.wait_event(ident, "pulled")
        time.sleep(0.5)  # the send queue is full: the iterable is not being pulled
        assert core_server.heartbeat() == 0

