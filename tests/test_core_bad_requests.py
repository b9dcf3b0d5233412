"""Requests the server refuses itself (SPEC section 4, "Bad requests"): the status, then
``Connection: close`` and a closed connection, and the app is never called.  Also the
slow-client timeouts."""

import time

import pytest

from tests.support import RawClient, ServerProcess, build_request, chunked, get

HEADER_LIMIT = 2048
BODY_LIMIT = 4096


@pytest.fixture(scope="module")
def limited():
    """The router with small limits (max_header_size, max_body_size)."""
    srv = ServerProcess("tests.apps:router", max_header_size=HEADER_LIMIT,
                        max_body_size=BODY_LIMIT).start()
    yield srv
    srv.stop()


def app_calls(srv):
    return len(srv.events("router"))


def assert_refused(srv, raw, status, slowly=False):
    """Send ``raw``; expect ``status`` with Connection: close, then a closed connection, and
    no app call.  Then check the server still answers a good request."""
    calls = app_calls(srv)
    with RawClient(srv.host, srv.port) as c:
        try:
            if slowly:
                c.send_slowly(raw, step=max(1, len(raw) // 8), delay=0.01)
            else:
                c.send(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before it has all of a large request
        resp = c.read_response()
        assert resp.status == status, resp
        assert "close" in resp.connection_tokens(), resp
        assert c.peer_closed(5), "connection left open after %d" % status
    assert app_calls(srv) == calls, "the app was called for a refused request"
    assert get(srv.port, "/hello/").status == 200
    return resp


MALFORMED = {
    "garbage_request_line": b"GARBAGE\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_method_characters": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space_in_header_name": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
    "space_before_colon": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n",
    "empty_header_name": b"GET /environ/ HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "header_without_colon": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "nul_in_header_value": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bare_lf_line_ends": b"GET /environ/ HTTP/1.1\nHost: x\nX-A: 1\n\n",
    "bare_lf_after_header": b"GET /environ/ HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    "bare_cr_in_header": b"GET /environ/ HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n",
    "obs_fold": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",
    "non_numeric_content_length": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n"
                                   b"\r\n1x"),
    "negative_content_length": b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "differing_content_lengths": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                  b"Content-Length: 4\r\n\r\nabcd"),
    "content_length_list": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\n"
                            b"abcd"),
    "invalid_chunk_size": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\nzz\r\nabc\r\n0\r\n\r\n"),
    "overflowing_chunk_size": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n"
                               b"10000000000000000000001\r\nabc\r\n0\r\n\r\n"),
    "chunk_without_crlf": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n3\r\nabcXX0\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_gets_400_and_close_without_calling_the_app(server, name):
    assert_refused(server, MALFORMED[name], 400)


@pytest.mark.parametrize("method", ["FOO", "get", "G\x01T"])
def test_unknown_method_is_refused_without_calling_the_app(server, method):
    calls = app_calls(server)
    with RawClient(server.host, server.port) as c:
        c.send(method.encode("latin-1") + b" /environ/ HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status in (400, 501), resp  # RFC 9110 section 9.1 suggests 501
        assert c.peer_closed(5)
    assert app_calls(server) == calls


def test_content_length_with_transfer_encoding_gets_400(server):
    # RFC 9112 section 6.3: a request smuggling vector; refused, never guessed.
    raw = (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"abcd"))
    assert_refused(server, raw, 400)


def test_malformed_second_request_after_a_good_one(server):
    with RawClient(server.host, server.port) as c:
        c.send(build_request("GET", "/hello/") + b"BROKEN REQUEST\r\n\r\n")
        assert c.read_response().body == b"Hello, world!\n"
        bad = c.read_response()
        assert bad.status == 400
        assert c.peer_closed(5)


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked"])
def test_unsupported_transfer_encoding_gets_501(server, coding):
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", coding)]) + chunked(b"abc")
    assert_refused(server, raw, 501)


def test_transfer_encoding_without_final_chunked_is_refused(server):
    # RFC 9112 section 6.3 says 400, section 6.1 suggests 501: either, never a guessed body.
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", "gzip")]) + b"abc"
    calls = app_calls(server)
    with RawClient(server.host, server.port) as c:
        c.send(raw)
        resp = c.read_response()
        assert resp.status in (400, 501), resp
        assert c.peer_closed(5)
    assert app_calls(server) == calls


def test_head_over_max_header_size_gets_431(limited):
    raw = build_request("GET", "/environ/", [("X-Big", "b" * (HEADER_LIMIT + 100))])
    assert_refused(limited, raw, 431)


def test_many_headers_over_max_header_size_get_431(limited):
    headers = [("X-H%d" % i, "v" * 40) for i in range(HEADER_LIMIT // 40)]
    assert_refused(limited, build_request("GET", "/environ/", headers), 431)


def test_request_line_over_max_header_size_gets_431(limited):
    raw = build_request("GET", "/environ/" + "a" * (HEADER_LIMIT + 100))
    assert_refused(limited, raw, 431)


def test_endless_head_gets_431_without_waiting_for_its_end(limited):
    # The head never ends: the server must answer once the limit is passed.
    raw = b"GET /environ/ HTTP/1.1\r\nHost: x\r\n" + b"X-Endless: " + b"e" * (HEADER_LIMIT * 4)
    assert_refused(limited, raw, 431)


def test_head_within_max_header_size_is_served(limited):
    raw = build_request("GET", "/environ/", [("X-Big", "b" * (HEADER_LIMIT - 200))])
    with RawClient(limited.host, limited.port) as c:
        c.send(raw)
        resp = c.read_response()
    assert resp.status == 200
    assert resp.json()["HTTP_X_BIG"] == "b" * (HEADER_LIMIT - 200)


def test_body_over_max_body_size_gets_413_without_reading_it(limited):
    # Only the head is sent: the answer must not wait for the body.
    raw = build_request("POST", "/echo/", [("Content-Length", str(BODY_LIMIT * 100))])
    resp = assert_refused(limited, raw, 413)
    assert resp.status == 413


def test_body_over_max_body_size_with_expect_gets_413_instead_of_100(limited):
    raw = build_request("POST", "/echo/", [("Content-Length", str(BODY_LIMIT + 1)),
                                           ("Expect", "100-continue")])
    with RawClient(limited.host, limited.port) as c:
        c.send(raw)
        resp = c.read_response(interim=True)
        assert resp.status == 413
        assert c.peer_closed(5)


def test_chunked_body_over_max_body_size_gets_413(limited):
    calls = app_calls(limited)
    parts = [b"c" * 1000 for _ in range(BODY_LIMIT // 1000 + 2)]
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")]) + chunked(*parts)
    with RawClient(limited.host, limited.port) as c:
        try:
            c.send(raw)
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = c.read_response()
        assert resp.status == 413
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(5)
    assert app_calls(limited) == calls


def test_body_at_max_body_size_is_accepted(limited):
    body = b"m" * BODY_LIMIT
    resp = get(limited.port, "/echo/", method="POST", body=body)
    assert resp.status == 200 and resp.json()["length"] == BODY_LIMIT


def test_header_timeout_closes_a_silent_connection(server_factory):
    srv = server_factory("tests.apps:router", header_timeout=1)
    with RawClient(srv.host, srv.port) as c:
        assert c.peer_closed(10), "a connection that sends nothing was kept open"
        assert not c.buf or bytes(c.buf).startswith(b"HTTP/1.1 408"), bytes(c.buf)


def test_header_timeout_closes_a_connection_with_a_partial_head(server_factory):
    srv = server_factory("tests.apps:router", header_timeout=1)
    with RawClient(srv.host, srv.port) as c:
        c.send(b"GET /environ/ HTTP/1.1\r\nHost: x\r\nX-Partial: ")
        assert c.peer_closed(10)
        assert not c.buf or bytes(c.buf).startswith(b"HTTP/1.1 408"), bytes(c.buf)
    assert srv.events("router") == []


def test_header_timeout_is_not_reset_by_each_byte(server_factory):
    # A slowloris client: one byte every 0.25 s never completes a head within 1 s.
    srv = server_factory("tests.apps:router", header_timeout=1)
    raw = build_request("GET", "/environ/", [("X-Slow", "s" * 20)])  # about 60 bytes: 15 s
    with RawClient(srv.host, srv.port) as c:
        closed = False
        for i in range(len(raw)):
            try:
                c.send(raw[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if c.peer_closed(0.25):
                closed = True
                break
        assert closed, "the server waited for a slowloris head for %d bytes" % len(raw)
    assert srv.events("router") == []


def test_header_timeout_leaves_a_prompt_client_alone(server_factory):
    srv = server_factory("tests.apps:router", header_timeout=1)
    with RawClient(srv.host, srv.port) as c:
        time.sleep(0.3)
        c.send_slowly(build_request("GET", "/hello/"), step=10, delay=0.02)
        assert c.read_response().body == b"Hello, world!\n"


def test_keepalive_timeout_closes_an_idle_connection(server_factory):
    srv = server_factory("tests.apps:router", keepalive=1)
    with RawClient(srv.host, srv.port) as c:
        c.request("GET", "/hello/")
        assert c.read_response().status == 200
        time.sleep(0.3)
        c.request("GET", "/hello/")  # still open shortly after
        assert c.read_response().status == 200
        started = time.monotonic()
        assert c.peer_closed(10), "an idle keep-alive connection was kept open"
        assert not c.buf
    assert time.monotonic() - started >= 0.5  # not closed at once: it was idle first


def test_keepalive_timeout_does_not_cut_a_slow_app(server_factory):
    srv = server_factory("tests.apps:router", keepalive=1)
    with RawClient(srv.host, srv.port) as c:
        c.request("GET", "/slow_start/?s=1.5")
        assert c.read_response().body == b"slept"


def test_header_timeout_applies_to_a_second_request_on_a_kept_alive_connection(server_factory):
    srv = server_factory("tests.apps:router", header_timeout=1, keepalive=30)
    with RawClient(srv.host, srv.port) as c:
        c.request("GET", "/hello/")
        assert c.read_response().status == 200
        c.send(b"GET /environ/ HTTP/1.1\r\nHo")  # a head begun, never finished
        assert c.peer_closed(10), "a stalled second head was kept open (keep-alive is 30 s)"


def test_header_timeout_does_not_cut_a_slow_body(server_factory):
    srv = server_factory("tests.apps:router", header_timeout=1)
    with RawClient(srv.host, srv.port) as c:
        c.request("POST", "/echo/", content_length=10)
        for i in range(10):  # 2 s for the body, after a prompt head
            c.send(b"%d" % i)
            time.sleep(0.2)
        assert c.read_response().json()["body"] == "0123456789"


def test_keepalive_timeout_does_not_cut_a_slow_reader(server_factory):
    srv = server_factory("tests.apps:router", keepalive=1, header_timeout=1)
    with RawClient(srv.host, srv.port, rcvbuf=65536) as c:
        c.request("GET", "/stream/?chunks=80&size=65536")  # 5 MiB
        raw = bytearray()
        for _ in range(12):  # about 2.4 s of slow reading, the server blocked on writes
            raw += c.sock.recv(65536)
            time.sleep(0.2)
        c.buf[:0] = raw
        resp = c.read_response()
        assert resp.status == 200 and resp.complete, resp
        assert len(resp.body) == 80 * 65536
