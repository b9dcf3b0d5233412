"""Connections (SPEC section 4): HTTP/1.1 keep-alive unless ``Connection: close``, HTTP/1.0
keep-alive only when asked for, pipelined requests answered in order however they are split,
and clients that send slowly, half-close or come by the dozen."""

import hashlib
import http.client
import os
import random
import re
import subprocess

import pytest

from tests.support.client import build_request, chunked


def test_http11_connection_is_kept_alive_by_default(server):
    with server.client() as c:
        ports = set()
        for i in range(3):
            c.request("GET", "/environ/%d" % i)
            resp = c.read_response()
            assert resp.status == 200
            assert "close" not in resp.connection_tokens()
            env = resp.json()
            assert env["PATH_INFO"] == "/environ/%d" % i
            ports.add(env["REMOTE_PORT"])
        assert len(ports) == 1  # the same client socket every time
        assert c.nothing_received(0.2)


def test_connection_close_request_closes_after_the_response(server):
    with server.client() as c:
        c.request("GET", "/hello/", [("Connection", "close")])
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(5)
        assert not c.buf


@pytest.mark.parametrize("value", ["CLOSE", "Close", "keep-alive, close"])
def test_connection_close_token_is_case_insensitive_and_found_in_lists(server, value):
    with server.client() as c:
        c.request("GET", "/hello/", [("Connection", value)])
        assert c.read_response().status == 200
        assert c.peer_closed(5)


def test_http10_connection_is_closed_by_default(server):
    with server.client() as c:
        c.request("GET", "/hello/", version="HTTP/1.0")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        assert "keep-alive" not in resp.connection_tokens()
        assert c.peer_closed(5)


def test_http10_keep_alive_when_asked(server):
    with server.client() as c:
        for i in range(3):
            c.request("GET", "/environ/ka%d" % i, [("Connection", "keep-alive")],
                      version="HTTP/1.0")
            resp = c.read_response()
            assert resp.status == 200
            assert resp.framing == "length"  # 1.0 has no chunked: only a length keeps it alive
            assert "keep-alive" in resp.connection_tokens()
            assert resp.json()["PATH_INFO"] == "/environ/ka%d" % i
        c.request("GET", "/hello/", version="HTTP/1.0")  # no keep-alive asked: the last one
        assert c.read_response().body == b"Hello, world!\n"
        assert c.peer_closed(5)


@pytest.mark.parametrize("value", ["Keep-Alive", "KEEP-ALIVE", "keep-alive, foo"])
def test_http10_keep_alive_token_is_case_insensitive(server, value):
    with server.client() as c:
        for _ in range(2):
            c.request("GET", "/hello/", [("Connection", value)], version="HTTP/1.0")
            assert c.read_response().body == b"Hello, world!\n"


def test_pipelined_requests_answered_in_order(server):
    with server.client() as c:
        c.send(build_request("GET", "/environ/one")
               + build_request("GET", "/hello/")
               + build_request("GET", "/environ/three?x=3"))
        first, second, third = (c.read_response() for _ in range(3))
    assert first.json()["PATH_INFO"] == "/environ/one"
    assert second.body == b"Hello, world!\n"
    assert third.json()["QUERY_STRING"] == "x=3"


def test_pipelined_requests_with_bodies_and_a_streamed_response(server):
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Content-Length", "5")], b"first")
               + build_request("GET", "/stream/?chunks=3&size=1000")
               + build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                               chunked(b"sec", b"ond"))
               + build_request("HEAD", "/hello/")
               + build_request("GET", "/environ/last"))
        assert c.read_response().json()["body"] == "first"
        streamed = c.read_response()
        assert streamed.body == b"\x00" * 1000 + b"\x01" * 1000 + b"\x02" * 1000
        assert c.read_response().json()["body"] == "second"
        head = c.read_response("HEAD")
        assert head.status == 200 and head.body == b""
        assert c.read_response().json()["PATH_INFO"] == "/environ/last"


def test_many_pipelined_requests_in_one_write(server):
    count = 100
    with server.client() as c:
        c.send(b"".join(build_request("GET", "/environ/p%d" % i) for i in range(count)))
        paths = [c.read_response().json()["PATH_INFO"] for _ in range(count)]
    assert paths == ["/environ/p%d" % i for i in range(count)]


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
    with server.client() as c:
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, 2, 3, 7, 100, 1000, 4096, 16383, 16384, 16385, 40000))
            c.send(stream[pos:pos + step])
            pos += step
        for i, (kind, value) in enumerate(expected):
            data = c.read_response().json()
            assert data["PATH_INFO" if kind == "environ" else "sha256"] == value, i


def test_requests_pipelined_after_connection_close_are_not_served(server):
    calls = len(server.events("router"))
    with server.client() as c:
        c.send(build_request("GET", "/hello/", [("Connection", "close")])
               + build_request("GET", "/environ/must-not-run"))
        assert c.read_response().body == b"Hello, world!\n"
        assert c.peer_closed(5)
        assert not c.buf, bytes(c.buf[:200])
    assert server.get("/hello/").status == 200
    assert ["call", "/environ/must-not-run"] not in server.events("router")[calls:]


def test_request_sent_one_byte_at_a_time(server):
    body = b"one byte at a time"
    raw = build_request("POST", "/echo/?x=1", [("Content-Length", str(len(body))),
                                               ("X-Slow", "yes")], body)
    with server.client() as c:
        c.send_slowly(raw, step=1, delay=0.002)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.json()["body"] == body.decode()
        c.send_slowly(build_request("GET", "/hello/"), step=1, delay=0.001)
        assert c.read_response().body == b"Hello, world!\n"


def test_chunked_request_sent_one_byte_at_a_time(server):
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                        chunked(b"abc", b"defgh", trailers=[("X-Trailer", "t")]))
    with server.client() as c:
        c.send_slowly(raw, step=1, delay=0.001)
        assert c.read_response().json()["body"] == "abcdefgh"


def test_client_half_close_after_request_still_gets_the_response(server):
    with server.client() as c:
        c.request("GET", "/hello/", [("Connection", "close")])
        c.shutdown_write()
        assert c.read_response().body == b"Hello, world!\n"


def test_concurrent_connections_are_all_served(server):
    clients = [server.client() for _ in range(50)]
    try:
        for i, c in enumerate(clients):  # every request is sent before any answer is read
            c.request("GET", "/environ/c%d" % i)
        for i, c in reversed(list(enumerate(clients))):
            assert c.read_response().json()["PATH_INFO"] == "/environ/c%d" % i
    finally:
        for c in clients:
            c.close()


def test_http_client_reuses_one_connection(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/hello/")
        assert conn.getresponse().read() == b"Hello, world!\n"
        sock = conn.sock
        for i in range(5):
            conn.request("POST", "/echo/", body=b"n%d" % i)
            resp = conn.getresponse()
            assert resp.status == 200
            assert b'"body": "n%d"' % i in resp.read()
            assert conn.sock is sock  # http.client reconnects only if the server closed
    finally:
        conn.close()


def test_curl_reuses_the_connection_for_two_urls(server):
    out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", server.url("/hello/"),
                          server.url("/environ/curl")], capture_output=True, timeout=60,
                         check=True)
    assert out.stdout.startswith(b"Hello, world!\n")
    assert b'"PATH_INFO": "/environ/curl"' in out.stdout
    assert re.search(rb"Re-?using existing connection", out.stderr), out.stderr[-2000:]

