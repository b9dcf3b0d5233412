"""The core's heartbeat (``_core.Server(heartbeat=buffer)``, what the master watches for
``--timeout``): while app code runs, the CLOCK_MONOTONIC time in ns at which that call began;
0 when no app code runs.  The buffer is a shared file mapping (tests/support/core_server.py),
so the test reads the file."""

import struct
import time

import pytest

from tests.support.server import unique_id
from tests.support.waits import wait_for


@pytest.fixture
def core_server(start, tmp_path):
    path = tmp_path / "heartbeat"
    path.write_bytes(b"\xff" * 8)  # not 0: the core must write it
    srv = start.script("-m", "tests.support.core_server", str(path))
    srv.heartbeat = lambda: struct.unpack("=Q", path.read_bytes()[:8])[0]
    return srv


def test_heartbeat_is_zero_while_idle(core_server):
    # The file starts as 0xff...: a 0 proves the core writes it (and that we see its writes).
    assert wait_for(lambda: core_server.heartbeat() == 0, timeout=5), core_server.heartbeat()


def test_heartbeat_holds_the_start_of_a_running_app_call(core_server):
    ident = unique_id()
    with core_server.client() as c:
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
    with core_server.client(rcvbuf=65536) as c:
        c.request("GET", "/stream/?chunks=800&size=65536&id=" + ident)
        assert c.read_head().status == 200
        assert core_server.wait_event(ident, "pulled")
        time.sleep(0.5)  # the send queue is full: the iterable is not being pulled
        assert core_server.heartbeat() == 0
