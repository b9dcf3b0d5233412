"""Robustness of the core: requests split at every awkward place, many and large items and
headers, no leaks over thousands of requests, other socket families, clients that vanish."""

import hashlib
import json
import os
import random
import socket
import time

import pytest

from tests.support import (RSS_MEANINGFUL, RawClient, ServerProcess, build_request, chunked,
                           get, unique_id, wait_for)


def test_pipelined_requests_split_at_random_places(server):
    rng = random.Random(1234)
    expected, stream = [], b""
    for i in range(60):
        kind = i % 3
        if kind == 0:
            stream += build_request("GET", "/environ/r%d?q=%d" % (i, i),
                                    [("X-Pad", "p" * rng.randrange(0, 3000))])
            expected.append(("environ", "/environ/r%d" % i))
        elif kind == 1:
            body = os.urandom(rng.randrange(0, 20000))
            stream += build_request("POST", "/echo/", [("Content-Length", str(len(body)))], body)
            expected.append(("echo", hashlib.sha256(body).hexdigest()))
        else:
            parts = [os.urandom(rng.randrange(1, 5000)) for _ in range(rng.randrange(0, 4))]
            stream += build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                                    chunked(*parts, trailers=[("X-T", "v")]))
            expected.append(("echo", hashlib.sha256(b"".join(parts)).hexdigest()))
    with RawClient(server.host, server.port) as c:
        pos = 0
        for _ in range(100000):  # bounded: ends when the stream is sent
            if pos >= len(stream):
                break
            step = rng.choice((1, 2, 3, 7, 100, 1000, 4096, 16383, 16384, 16385, 40000))
            c.send(stream[pos:pos + step])
            pos += step
        for i, (kind, value) in enumerate(expected):
            data = c.read_response().json()
            if kind == "environ":
                assert data["PATH_INFO"] == value, i
            else:
                assert data["sha256"] == value, i


def test_long_header_values_sent_in_pieces_are_intact(server):
    long_value = "".join(chr(33 + i % 90) for i in range(30000))
    raw = build_request("GET", "/environ/long", [("X-Long-Header-Name-" + "n" * 200, "short"),
                                                 ("X-Long", long_value), ("X-After", "after")])
    with RawClient(server.host, server.port) as c:
        c.send_slowly(raw, step=997, delay=0.001)
        env = c.read_response().json()
    assert env["HTTP_X_LONG"] == long_value
    assert env["HTTP_X_LONG_HEADER_NAME_" + "N" * 200] == "short"
    assert env["HTTP_X_AFTER"] == "after"


def test_many_request_headers(server):
    headers = [("X-Header-%d" % i, "value-%d" % i) for i in range(500)]
    env = get(server.port, "/environ/", headers).json()
    for i in range(500):
        assert env["HTTP_X_HEADER_%d" % i] == "value-%d" % i


def test_large_body_then_a_pipelined_request_in_one_write(server):
    body = os.urandom(3 * 1024 * 1024)
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Content-Length", str(len(body)))], body)
               + build_request("GET", "/environ/after"))
        assert c.read_response().json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


@pytest.mark.parametrize("kind", ["list", "gen", "write"])
def test_thousands_of_small_items(server, kind):
    # More items than IOV_MAX (1024): a writev/sendmsg of every queued item at once would fail.
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/many_items/?n=5000&size=3&kind=" + kind)
        c.request("GET", "/environ/after")
        resp = c.read_response()
        assert resp.status == 200 and resp.complete
        assert resp.body == b"".join((b"%d" % (i % 10)) * 3 for i in range(5000))
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_many_large_items_through_write(server):
    # PEP 3333: write() returns once the data is sent or buffered; it must not fail because
    # the client has not read yet (the client here waits before reading).
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/many_items/?n=160&size=65536&kind=write")  # 10 MiB through write()
        time.sleep(0.5)
        resp = c.read_response()
    assert len(resp.body) == 160 * 65536
    assert resp.body[-65536:] == b"9" * 65536


def test_large_response_headers(server):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/big_headers/?n=200&size=1000")  # 200 KB of headers
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"big headers"
        for i in (0, 99, 199):
            assert resp.header("X-Big-%d" % i) == chr(97 + i % 26) * 1000
        c.request("GET", "/hello/")
        assert c.read_response().body == b"Hello, world!\n"


@pytest.mark.parametrize("value", ["CLOSE", "Close", "keep-alive, close"])
def test_connection_close_token_is_case_insensitive_and_in_lists(server, value):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/hello/", [("Connection", value)])
        assert c.read_response().status == 200
        assert c.peer_closed(5)


@pytest.mark.parametrize("value", ["Keep-Alive", "KEEP-ALIVE", "keep-alive, foo"])
def test_http10_keep_alive_token_is_case_insensitive(server, value):
    with RawClient(server.host, server.port) as c:
        for _ in range(2):
            c.request("GET", "/hello/", [("Connection", value)], version="HTTP/1.0")
            assert c.read_response().body == b"Hello, world!\n"


def test_expect_100_continue_value_is_case_insensitive(server):
    with RawClient(server.host, server.port) as c:
        c.request("POST", "/echo/", [("Expect", "100-Continue")], content_length=2)
        assert c.read_head().status == 100
        c.send(b"ok")
        assert c.read_response().json()["body"] == "ok"


def test_no_memory_or_descriptor_leak_over_thousands_of_requests(server_factory):
    srv = server_factory("tests.apps:router")
    body = os.urandom(50000)
    batch = (build_request("GET", "/environ/leak?x=1", [("X-A", "a" * 100)]) * 20
             + build_request("POST", "/echo/", [("Content-Length", str(len(body)))], body) * 5
             + build_request("GET", "/scripted/?kind=gen&part=a&part=b") * 5)
    per_batch = 30

    def run(batches):
        with RawClient(srv.host, srv.port) as c:
            for i in range(batches):
                c.send(batch)
                for _ in range(per_batch):
                    assert c.read_response().status == 200
                if i % 10 == 0:  # an app error (the server may close after a 500)
                    assert get(srv.port, "/raise_before_headers/").status == 500

    run(40)  # warm up: caches, pools, allocator arenas
    rss, fds = srv.rss_kib(), srv.open_fds()
    run(150)  # 4500 requests, 750 bodies of 50 KB (37 MB if they leaked)
    grown = srv.rss_kib() - rss
    assert not RSS_MEANINGFUL or grown < 8 * 1024, "RSS grew by %d KiB over 4500 requests" % grown
    assert wait_for(lambda: srv.open_fds() <= fds, timeout=5), (fds, srv.open_fds())


def test_spooled_bodies_release_their_temporary_files(server_factory):
    srv = server_factory("tests.apps:router", spool_threshold=1024)
    get(srv.port, "/echo/", method="POST", body=b"w" * 2000)
    fds = srv.open_fds()
    body = b"s" * 100000
    with RawClient(srv.host, srv.port) as c:
        for _ in range(30):
            c.request("POST", "/echo/", body=body)
            assert c.read_response().json()["input_is_file"] is True
        c.request("POST", "/ignore_body/", body=body)  # spooled, never read by the app
        assert c.read_response().status == 200
    assert wait_for(lambda: srv.open_fds() <= fds, timeout=5), (fds, srv.open_fds())
    tmp_links = [os.readlink("/proc/%d/fd/%s" % (srv.pid, fd))
                 for fd in os.listdir("/proc/%d/fd" % srv.pid)]
    assert not [t for t in tmp_links if "(deleted)" in t], tmp_links


def test_client_that_leaves_while_the_app_runs(server):
    ident = unique_id()
    c = RawClient(server.host, server.port)
    c.request("GET", "/closing/?mode=normal&sleep=0.5&id=" + ident)
    c.close()
    assert server.wait_event(ident, "close", timeout=10), server.events(ident)
    assert get(server.port, "/hello/").status == 200
    assert [e[0] for e in server.events(ident)].count("close") == 1


def test_client_that_resets_mid_request_body(server):
    calls = len(server.events("router"))
    c = RawClient(server.host, server.port)
    c.send(build_request("POST", "/echo/", [("Content-Length", "100000")], b"x" * 5000))
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # RST
    assert get(server.port, "/hello/").status == 200
    assert ["call", "/echo/"] not in server.events("router")[calls:]


def test_ipv6_listener_environ(server_factory):
    srv = server_factory("tests.apps:router", bind="[::1]:0")
    assert srv.host == "::1"
    with RawClient("::1", srv.port) as c:
        c.request("GET", "/environ/v6", [("Host", "[::1]:%d" % srv.port)])
        env = c.read_response().json()
        local_port = c.sock.getsockname()[1]
    assert env["REMOTE_ADDR"] == "::1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["SERVER_PORT"] == str(srv.port)


def test_unix_socket_listener(tmp_path):
    path = str(tmp_path / "aiowsgi.sock")
    srv = ServerProcess("tests.apps:router", bind="unix:" + path).start()
    try:
        for _ in range(2):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(path)
                s.sendall(build_request("GET", "/environ/unix", [("Connection", "close")]))
                data = b""
                for _ in range(1000):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        env = json.loads(body)
        assert env["PATH_INFO"] == "/environ/unix"
        for key in ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT"):
            assert isinstance(env.get(key, ""), str), key
        srv.check_alive()
    finally:
        srv.stop()
