"""Connection management: keep-alive, Connection: close, HTTP/1.0, pipelining, slow senders."""

import http.client
import re
import subprocess
import time

from tests.support import RSS_MEANINGFUL, RawClient, build_request, chunked, wait_for


def test_http11_connection_is_kept_alive_by_default(server):
    with RawClient(server.host, server.port) as c:
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
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/hello/", [("Connection", "close")])
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(5)
        assert not c.buf


def test_http10_connection_is_closed_by_default(server):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/hello/", version="HTTP/1.0")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"Hello, world!\n"
        assert "keep-alive" not in resp.connection_tokens()
        assert c.peer_closed(5)


def test_http10_keep_alive_when_asked(server):
    with RawClient(server.host, server.port) as c:
        for i in range(3):
            c.request("GET", "/environ/ka%d" % i, [("Connection", "keep-alive")],
                      version="HTTP/1.0")
            resp = c.read_response()
            assert resp.status == 200
            assert resp.framing == "length"  # 1.0 has no chunked: only a length keeps it alive
            assert "keep-alive" in resp.connection_tokens()
            assert resp.json()["PATH_INFO"] == "/environ/ka%d" % i
        c.request("GET", "/hello/", version="HTTP/1.0")  # no keep-alive asked: last one
        assert c.read_response().body == b"Hello, world!\n"
        assert c.peer_closed(5)


def test_pipelined_requests_answered_in_order(server):
    with RawClient(server.host, server.port) as c:
        c.send(build_request("GET", "/environ/one")
               + build_request("GET", "/hello/")
               + build_request("GET", "/environ/three?x=3"))
        first, second, third = (c.read_response() for _ in range(3))
    assert first.json()["PATH_INFO"] == "/environ/one"
    assert second.body == b"Hello, world!\n"
    assert third.json()["QUERY_STRING"] == "x=3"


def test_pipelined_requests_with_bodies_and_a_streamed_response(server):
    with RawClient(server.host, server.port) as c:
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
    with RawClient(server.host, server.port) as c:
        c.send(b"".join(build_request("GET", "/environ/p%d" % i) for i in range(count)))
        paths = [c.read_response().json()["PATH_INFO"] for _ in range(count)]
    assert paths == ["/environ/p%d" % i for i in range(count)]


def test_request_sent_one_byte_at_a_time(server):
    body = b"one byte at a time"
    raw = build_request("POST", "/echo/?x=1", [("Content-Length", str(len(body))),
                                               ("X-Slow", "yes")], body)
    with RawClient(server.host, server.port) as c:
        c.send_slowly(raw, step=1, delay=0.002)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.json()["body"] == body.decode()
        c.send_slowly(build_request("GET", "/hello/"), step=1, delay=0.001)
        assert c.read_response().body == b"Hello, world!\n"


def test_chunked_request_sent_one_byte_at_a_time(server):
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                        chunked(b"abc", b"defgh", trailers=[("X-Trailer", "t")]))
    with RawClient(server.host, server.port) as c:
        c.send_slowly(raw, step=1, delay=0.001)
        assert c.read_response().json()["body"] == "abcdefgh"


def test_http_client_reuses_one_connection(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/hello/")
        first = conn.getresponse()
        assert first.read() == b"Hello, world!\n"
        sock = conn.sock
        for i in range(5):
            conn.request("POST", "/echo/", body=b"n%d" % i)
            resp = conn.getresponse()
            assert resp.status == 200
            assert b'"body": "n%d"' % i in resp.read()
            assert conn.sock is sock  # http.client reconnects only if the server closed
    finally:
        conn.close()


def test_concurrent_connections_are_all_served(server):
    clients = [RawClient(server.host, server.port) for _ in range(50)]
    try:
        for i, c in enumerate(clients):  # every request is sent before any answer is read
            c.request("GET", "/environ/c%d" % i)
        for i, c in enumerate(reversed(clients)):
            assert c.read_response().json()["PATH_INFO"] == "/environ/c%d" % (49 - i)
    finally:
        for c in clients:
            c.close()


def test_closed_connections_release_their_file_descriptors(server):
    def settle():
        # The listening socket, stdio and one or two internal fds stay; connections must go.
        return server.open_fds()

    get_hello = build_request("GET", "/hello/")
    with RawClient(server.host, server.port) as c:  # warm up (lazy allocations)
        c.send(get_hello)
        c.read_response()
    time.sleep(0.2)
    baseline = settle()
    for _ in range(100):
        with RawClient(server.host, server.port) as c:
            c.send(get_hello)
            assert c.read_response().status == 200
    for _ in range(50):  # closed by the client before any request, and mid-request
        c = RawClient(server.host, server.port)
        c.send(b"GET /hel")
        c.close()
    assert wait_for(lambda: settle() <= baseline + 1, timeout=10), (baseline, settle())


def test_client_half_close_after_request_still_gets_the_response(server):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/hello/", [("Connection", "close")])
        c.shutdown_write()
        resp = c.read_response()
        assert resp.body == b"Hello, world!\n"


def test_requests_pipelined_after_connection_close_are_not_served(server):
    calls = len(server.events("router"))
    with RawClient(server.host, server.port) as c:
        c.send(build_request("GET", "/hello/", [("Connection", "close")])
               + build_request("GET", "/environ/must-not-run"))
        assert c.read_response().body == b"Hello, world!\n"
        assert c.peer_closed(5)
        assert not c.buf, bytes(c.buf[:200])
    assert get_hello_ok(server)
    calls_now = [e for e in server.events("router")[calls:]]
    assert ["call", "/environ/must-not-run"] not in calls_now


def get_hello_ok(server):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/hello/")
        return c.read_response().status == 200


def test_pipelined_flood_unread_by_the_client_costs_bounded_memory(server_factory):
    # 400 pipelined requests for 256 KiB each (100 MiB of responses) that the client does not
    # read at first: the server must stop reading requests, not buffer answers.
    srv = server_factory("tests.apps:router")
    count = 400
    with RawClient(srv.host, srv.port, rcvbuf=65536) as c:
        request = build_request("GET", "/stream/?chunks=4&size=65536")
        c.send(request * count)
        time.sleep(1.5)
        rss = srv.rss_kib()
        assert not RSS_MEANINGFUL or rss < 100 * 1024, \
            "server RSS %d KiB with unread pipelined responses" % rss
        with RawClient(srv.host, srv.port) as other:  # others are still served meanwhile
            other.request("GET", "/hello/")
            assert other.read_response().status == 200
        for i in range(count):
            resp = c.read_response()
            assert resp.complete and len(resp.body) == 4 * 65536, i
        assert not RSS_MEANINGFUL or srv.rss_kib() < 100 * 1024


def test_curl_reuses_the_connection_for_two_urls(server):
    out = subprocess.run(["curl", "-sS", "-v", "--max-time", "20", server.url("/hello/"),
                          server.url("/environ/curl")], capture_output=True, timeout=60,
                         check=True)
    assert out.stdout.startswith(b"Hello, world!\n")
    assert b'"PATH_INFO": "/environ/curl"' in out.stdout
    assert re.search(rb"Re-?using existing connection", out.stderr), out.stderr[-2000:]
