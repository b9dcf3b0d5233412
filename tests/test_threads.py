"""The app thread pool (``--threads N``, SPEC section 8): apps that wait no longer stall the
worker, back-pressure counts requests, and a thread is the app's only while the app runs.

Every other behaviour is checked in both modes by the whole suite (conftest's
SERVER_VARIANTS); these tests are about what only a pool does, so each starts its own server
with the options it needs, once.
"""

import time

import pytest

from tests.support.client import build_request, timed_request
from tests.support.server import ROUTER, RSS_MEANINGFUL, Launcher, unique_id
from tests.support.waits import scaled, wait_for


@pytest.fixture
def launch(tmp_path):
    launcher = Launcher(tmp_path)  # no SERVER_VARIANTS options: these tests choose their own
    yield launcher
    dead = launcher.stop_all()
    if dead:
        pytest.fail("a server died during the test:\n" + "\n".join(dead), pytrace=False)


def gate_target(ident, gate_file):
    return "/gate/?id=%s&open=%s" % (ident, gate_file)


def entered(srv, ident):
    return [e for e in srv.events(ident) if e[0] == "entered"]


@pytest.mark.parametrize("threads, multithread", [(1, False), (4, True)])
def test_wsgi_multithread_says_whether_app_calls_share_the_process(launch, threads,
                                                                   multithread):
    srv = launch.apps(ROUTER, threads=threads)
    environ = srv.get("/environ/").json()
    assert environ["wsgi.multithread"] == multithread


def test_app_calls_that_wait_run_side_by_side_while_others_are_served(launch, tmp_path):
    srv = launch.apps(ROUTER, threads=4)
    gate_file = tmp_path / "open"
    clients = [srv.client() for _ in range(3)]
    idents = [unique_id() for _ in clients]
    for c, ident in zip(clients, idents):
        c.request("GET", gate_target(ident, gate_file))
    # three app calls are in progress at once, on three threads ...
    assert wait_for(lambda: all(entered(srv, i) for i in idents), timeout=5), srv.events()
    threads_used = {entered(srv, i)[0][1] for i in idents}
    assert len(threads_used) == 3
    # ... and the fourth thread still answers everyone else promptly
    with srv.client() as other:
        for _ in range(5):
            assert timed_request(other) < 1.0
    gate_file.touch()
    for c, ident in zip(clients, idents):
        assert c.read_response().body == ident.encode()
        c.close()


def test_a_full_pool_stops_reading_requests_and_loses_none(launch, tmp_path):
    """2 threads and --max-queue 2: with 2 requests running and 2 waiting, the loop reads no
    new request (a client's 64 MiB upload stalls in the socket buffers instead of being read
    and spooled); once a thread is free, every request is answered."""
    srv = launch.apps(ROUTER, threads=2, max_queue=2)
    gate_file = tmp_path / "open"
    idents = [unique_id() for _ in range(4)]
    clients = [srv.client() for _ in idents]
    for c, ident in zip(clients, idents):
        c.request("GET", gate_target(ident, gate_file))
    assert wait_for(lambda: sum(bool(entered(srv, i)) for i in idents) == 2, timeout=5)
    size = 64 << 20
    with srv.client() as upload:
        upload.send(build_request("POST", "/echo/", [("Content-Length", str(size))]))
        upload.sock.setblocking(False)
        piece, sent, deadline = memoryview(b"u" * (1 << 20)), 0, time.monotonic() + 1.5
        while sent < size and time.monotonic() < deadline:
            try:
                sent += upload.sock.send(piece[:min(len(piece), size - sent)])
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < size // 2, "the server read %d bytes of a request past --max-queue" % sent
        assert sum(bool(entered(srv, i)) for i in idents) == 2
        gate_file.touch()
        for c, ident in zip(clients, idents):
            assert c.read_response().body == ident.encode()
            c.close()
        upload.sock.setblocking(True)
        while sent < size:
            sent += upload.sock.send(piece[:min(len(piece), size - sent)])
        answer = upload.read_response()
        assert answer.status == 200 and answer.json()["length"] == size


def test_pipelined_requests_are_answered_in_order_by_a_pool(launch):
    srv = launch.apps(ROUTER, threads=4)
    idents = [unique_id() for _ in range(20)]
    batch = b"".join(build_request("GET", "/gate/?id=%s" % i, [("Host", "x")]) for i in idents)
    with srv.client() as c:
        c.send(batch)
        assert [c.read_response().body for _ in idents] == [i.encode() for i in idents]


def test_a_finished_answer_goes_out_while_every_thread_is_in_a_long_call(launch, tmp_path):
    """A thread holds a finished answer a moment, to send it with the next ones, and then takes
    the next request; when that call and every other thread's last long, the loop sends the
    answer itself (it once waited for the thread's next call to end)."""
    srv = launch.apps(ROUTER, threads=2)
    long_gate, short_gate = tmp_path / "long", tmp_path / "short"
    first, short, second = unique_id(), unique_id(), unique_id()
    clients = {i: srv.client() for i in (first, short, second)}
    clients[first].request("GET", gate_target(first, long_gate))
    assert wait_for(lambda: entered(srv, first), timeout=5)
    clients[short].request("GET", gate_target(short, short_gate))
    assert wait_for(lambda: entered(srv, short), timeout=5)
    clients[second].request("GET", gate_target(second, long_gate))  # queued: both threads busy
    time.sleep(0.2)
    assert not entered(srv, second)
    short_gate.touch()  # the short call ends; its thread goes on with the second long one
    assert wait_for(lambda: entered(srv, second), timeout=5)
    start = time.monotonic()
    assert clients[short].read_response().body == short.encode()
    assert time.monotonic() - start < scaled(1.0)
    long_gate.touch()
    for ident in (first, second):
        assert clients[ident].read_response().body == ident.encode()
    for c in clients.values():
        c.close()


def test_write_on_an_app_thread_waits_for_a_reader_instead_of_buffering(launch):
    """With a pool, write() to a client that reads nothing blocks the app's thread (the server
    keeps a bounded queue); 64 MiB never pile up in memory."""
    srv = launch.apps(ROUTER, threads=2)
    ident = unique_id()
    rss = srv.rss_kib()
    with srv.client(rcvbuf=65536) as c:
        c.request("GET", "/write_flood/?mib=64&id=" + ident)
        assert c.read_head().status == 200
        time.sleep(1.0)  # the client reads no more
        wrote = [int(e[1]) for e in srv.events(ident) if e[0] == "wrote"]
        assert max(wrote, default=0) < 16, "write() ran %d MiB ahead of the client" % max(wrote)
        assert not RSS_MEANINGFUL or srv.rss_kib() - rss < 32 * 1024
        with srv.client() as other:  # the other thread serves others meanwhile
            assert timed_request(other) < 1.0


def test_an_app_waiting_on_the_sentinel_gives_its_thread_back(launch):
    """Two threads, three streaming uploads whose apps wait for body data: all three are parked,
    so a fourth client is still served at once; then the uploads finish."""
    srv = launch.apps("tests.support.apps:stream_router", threads=2, max_queue=8)
    uploads = [srv.client() for _ in range(3)]
    for c in uploads:
        c.send(build_request("POST", "/stream_hash/", [("Transfer-Encoding", "chunked")])
               + b"5\r\nhello\r\n")
    time.sleep(0.3)
    with srv.client() as other:  # three parked apps, two threads: all free for this one
        assert timed_request(other, "/hello/") < 1.0
    for c in uploads:
        c.send(b"0\r\n\r\n")
        assert c.read_response().status == 200
        c.close()
