"""Stopping (SPEC sections 2 and 3): a graceful stop (``Server.stop()``, SIGTERM or SIGINT to
the master) stops accepting at once, lets in-flight requests finish (an app call, a body still
arriving, a paused streaming upload, a download) up to ``--graceful-timeout``, answers a request
that arrives on a kept-alive connection (with Connection: close) and closes idle ones at the
end of their keep-alive, and exits 0; an immediate stop (``stop(graceful=False)``, SIGQUIT, a
second SIGINT) cuts them.  The shutdown delay before all this is tests/test_health_checks.py's."""

import hashlib
import signal
import threading
import time
from urllib.parse import quote

import pytest

from tests.support.apps import reporting_app
from tests.support.client import build_request, connection_refused, get, get_json
from tests.support.server import ROUTER, unique_id
from tests.support.waits import wait_for


def in_background(call):
    """Run ``call()`` on a thread; returns the thread and a dict that gets its ``value`` or
    its ``error``."""
    result = {}

    def run():
        try:
            result["value"] = call()
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def start_upload(running):
    """A request whose body is still arriving: 5 of its 10 bytes sent."""
    c = running.client()
    c.send(build_request("POST", "/echo/", [("Content-Length", "10")], b"12345"))
    time.sleep(0.3)
    return c


# -- Server.stop() ----------------------------------------------------------------------------

def test_serve_forever_runs_until_stop_from_another_thread(start):
    running = start.in_thread(reporting_app())
    assert get_json(running.address, "/x")["path"] == "/x"
    running.stop()
    assert connection_refused(running.address)


def test_graceful_stop_waits_for_a_request_body_in_progress(start):
    running = start.in_thread(reporting_app())
    with start_upload(running) as c:
        running.server.stop(graceful=True)
        time.sleep(0.3)
        c.send(b"67890")
        assert c.read_response().status == 200
    running.stop()


def test_immediate_stop_closes_a_request_still_in_progress(start):
    running = start.in_thread(reporting_app())
    with start_upload(running) as c:
        running.stop(graceful=False)
        assert c.peer_closed(5) and not c.buf


# -- SIGTERM to a loop ------------------------------------------------------------------------

def test_graceful_stop_finishes_the_in_flight_response(start):
    srv = start.apps(ROUTER)
    ident = unique_id()
    with srv.client() as c:
        c.request("GET", "/closing/?mode=normal&sleep=1&id=" + ident)
        assert srv.wait_event(ident, "call")  # the app is running (sleeping 1 s)
        srv.signal(signal.SIGTERM)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"part1;part2;part3;" and resp.complete
        assert c.peer_closed(10)  # closed after its current response
    assert srv.wait() == 0, srv.stderr()[-3000:]
    assert srv.count_events(ident, "close") == 1


# A connection between requests is not closed when a graceful stop begins: its client (a load
# balancer reusing it) may be sending a request at that very moment, which a close would
# lose.  It is answered (with Connection: close), or closed once idle past --keepalive.
def test_graceful_stop_answers_a_request_on_a_kept_alive_connection(start):
    srv = start.apps(ROUTER)
    with srv.client() as c:
        c.request("GET", "/hello/")
        assert c.read_response().status == 200
        srv.signal(signal.SIGTERM)
        assert c.nothing_received(0.5)  # still open: a request may be on its way
        c.request("GET", "/hello/")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(10)
    assert srv.wait(10) == 0, srv.stderr()[-3000:]


def test_graceful_stop_closes_idle_connections_once_their_keep_alive_ends(start):
    srv = start.apps(ROUTER, keepalive=1.5)
    idle = [srv.client() for _ in range(5)]
    try:
        for c in idle:
            c.request("GET", "/hello/")
            assert c.read_response().status == 200
        srv.signal(signal.SIGTERM)
        began = time.monotonic()
        for c in idle:
            assert c.peer_closed(10) and not c.buf
        assert time.monotonic() - began > 0.5  # not at once: at the end of their keep-alive
        # long before the 30 s graceful timeout: idle connections do not hold the stop
        assert srv.wait(10) == 0, srv.stderr()[-3000:]
    finally:
        for c in idle:
            c.close()


def test_graceful_stop_lets_a_paused_streaming_upload_finish(start):
    srv = start.apps("tests.support.apps:stream_router")
    ident = unique_id()
    with srv.client() as c:
        c.request("POST", "/stream_hash/?id=" + ident, content_length=10)
        c.send(b"01234")
        assert srv.wait_event(ident, "sentinel", 5), srv.events(ident)
        srv.signal(signal.SIGTERM)  # graceful: in-flight requests finish
        time.sleep(0.3)
        assert srv.alive()
        c.send(b"56789")
        resp = c.read_response()
    assert resp.status == 200 and "close" in resp.connection_tokens()
    assert resp.json()["sha256"] == hashlib.sha256(b"0123456789").hexdigest()
    assert srv.wait() == 0


def test_graceful_stop_lets_a_download_finish(start, tmp_path):
    path = tmp_path / "during-stop.bin"
    data = hashlib.sha256(b"stop").digest() * (16 * 1024 * 1024 // 32)  # 16 MiB
    path.write_bytes(data)
    srv = start.apps(ROUTER)
    with srv.client(rcvbuf=65536) as c:
        c.request("GET", "/file_wrapper/?path=" + quote(str(path)))
        assert c.read_head().status == 200
        first = c.read_exact(1024 * 1024)
        srv.signal(signal.SIGTERM)  # graceful: in-flight responses finish
        time.sleep(0.3)
        assert srv.alive()
        rest = c.read_exact(len(data) - len(first))
    assert first + rest == data
    assert srv.wait() == 0


# -- signals to the master --------------------------------------------------------------------

# stop() closes the core's listening sockets at once, even while a worker is busy in an app
# call, so connections made during the drain are refused rather than parked in the backlog.
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_graceful_stop_refuses_new_connections_and_finishes_in_flight_requests(start, signum,
                                                                               workers):
    server = start.cli("-b", "127.0.0.1:0", "-w", workers, "app:app")
    thread, result = in_background(lambda: get_json(server.address, "/sleep?2", timeout=20))
    time.sleep(0.5)  # the request is in the app now
    server.signal(signum)
    try:  # while the slow request still runs
        assert wait_for(lambda: connection_refused(server.address), timeout=1.2)
    finally:
        thread.join(20)
    assert result.get("value", {}).get("path") == "/sleep", result
    assert server.wait(20) == 0
    assert "Shutting down gracefully" in server.stderr()


def test_graceful_timeout_bounds_the_wait_for_in_flight_requests(start):
    server = start.cli("-b", "127.0.0.1:0", "--graceful-timeout", "0.5", "--timeout", "0",
                       "app:app")
    thread, result = in_background(lambda: get(server.address, "/sleep?30", timeout=30))
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0  # long before the 30 s request could have finished
    thread.join(20)
    assert "error" in result or result["value"].status != 200, result


@pytest.mark.parametrize("how", ["sigquit", "second_sigint"])
def test_immediate_stop_cuts_in_flight_requests(start, how):
    workers = "2" if how == "sigquit" else "1"
    server = start.cli("-b", "127.0.0.1:0", "-w", workers, "--timeout", "0", "app:app")
    thread, result = in_background(lambda: get(server.address, "/sleep?30", timeout=30))
    time.sleep(0.5)
    if how == "sigquit":
        server.signal(signal.SIGQUIT)
    else:
        server.signal(signal.SIGINT)
        time.sleep(0.3)
        server.signal(signal.SIGINT)
    assert server.wait(20) == 0
    thread.join(20)
    assert "error" in result, result  # the in-flight request was cut
    assert wait_for(lambda: connection_refused(server.address), timeout=1)
