"""Stopping the loop (``Server.stop(graceful=True)`` from a SIGTERM handler, ``max_requests``):
in-flight responses finish, idle connections are closed, run() returns."""

import signal
import socket
import subprocess

import pytest

from tests.support import RawClient, ServerProcess, get, unique_id, wait_for


@pytest.fixture
def proc():
    started = []

    def start(*apps, **options):
        srv = ServerProcess(*apps, **options).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.kill()


def wait_exit(srv, timeout=15):
    try:
        return srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def test_graceful_stop_finishes_the_in_flight_response(proc):
    srv = proc("tests.apps:router")
    ident = unique_id()
    with RawClient(srv.host, srv.port) as c:
        c.request("GET", "/closing/?mode=normal&sleep=1&id=" + ident)
        assert srv.wait_event(ident, "call")  # the app is running (sleeping 1 s)
        srv.proc.send_signal(signal.SIGTERM)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"part1;part2;part3;" and resp.complete
        assert c.peer_closed(10)  # closed after its current response
    assert wait_exit(srv) == 0, srv.stderr()[-3000:]
    assert [e[0] for e in srv.events(ident)].count("close") == 1


def test_graceful_stop_closes_idle_connections_at_once(proc):
    srv = proc("tests.apps:router")
    idle = [RawClient(srv.host, srv.port) for _ in range(5)]
    try:
        for c in idle:
            c.request("GET", "/hello/")
            assert c.read_response().status == 200
        srv.proc.send_signal(signal.SIGTERM)
        for c in idle:
            assert c.peer_closed(10)
        # Well before the 30 s graceful timeout: idle connections do not hold the stop.
        assert wait_exit(srv, timeout=10) == 0, srv.stderr()[-3000:]
    finally:
        for c in idle:
            c.close()


def test_no_new_connections_after_stop(proc):
    srv = proc("tests.apps:router")
    assert get(srv.port, "/hello/").status == 200
    srv.proc.send_signal(signal.SIGTERM)
    assert wait_exit(srv) == 0
    with pytest.raises(OSError):
        socket.create_connection((srv.host, srv.port), timeout=2).close()


def test_max_requests_ends_the_loop_after_that_many_requests(proc):
    srv = proc("tests.apps:router", max_requests=5)
    with RawClient(srv.host, srv.port) as c:
        for i in range(5):
            c.request("GET", "/environ/m%d" % i)
            resp = c.read_response()
            assert resp.status == 200 and resp.json()["PATH_INFO"] == "/environ/m%d" % i
        assert c.peer_closed(10)
    assert wait_exit(srv) == 0, srv.stderr()[-3000:]


def test_max_requests_counts_requests_across_connections(proc):
    srv = proc("tests.apps:router", max_requests=3)
    for i in range(3):
        assert get(srv.port, "/hello/").status == 200
    assert wait_for(lambda: srv.proc.poll() is not None, timeout=10)
    assert srv.proc.returncode == 0
