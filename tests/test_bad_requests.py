"""Requests the server refuses itself (SPEC section 4, "Bad requests"): malformed (400), an
unknown method or transfer coding (501), a head or body over the limits (431, 413); each time
``Connection: close``, a closed connection, and the app is never called.  Ambiguous framing
has its own file, test_request_smuggling.py."""

import pytest

from tests.support.client import build_request, chunked
from tests.support.server import ROUTER

HEADER_LIMIT = 2048
BODY_LIMIT = 4096


@pytest.fixture
def limited(shared_server):
    """The router with small limits (max_header_size, max_body_size)."""
    return shared_server(ROUTER, max_header_size=HEADER_LIMIT, max_body_size=BODY_LIMIT)


def app_calls(srv):
    return len(srv.events("router"))


def assert_refused(srv, raw, status):
    """Send ``raw``; expect ``status`` with Connection: close, then a closed connection, and
    no app call.  Then check the server still answers a good request."""
    calls = app_calls(srv)
    with srv.client() as c:
        c.send(raw, may_be_cut=True)  # the server may answer before it has all of it
        resp = c.read_response()
        assert resp.status == status, resp
        assert "close" in resp.connection_tokens(), resp
        assert c.peer_closed(5), "connection left open after %d" % status
    assert app_calls(srv) == calls, "the app was called for a refused request"
    assert srv.get("/hello/").status == 200
    return resp


# framing errors (Content-Length, chunk sizes, line ends, obs-fold) are in
# test_request_smuggling.py, against a streaming server too
MALFORMED = {
    "garbage_request_line": b"GARBAGE\r\n\r\n",
    "space_in_target": b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_method_characters": b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "space_in_header_name": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n",
    "empty_header_name": b"GET /environ/ HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
    "header_without_colon": b"GET /environ/ HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "non_numeric_content_length": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n"
                                   b"\r\n1x"),
    "invalid_chunk_size": (b"POST /echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\nzz\r\nabc\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_gets_400_and_close_without_calling_the_app(server, name):
    assert_refused(server, MALFORMED[name], 400)


@pytest.mark.parametrize("method, status", [("FOO", 501), ("get", 501), ("G\x01T", 400)])
def test_unknown_method_is_refused_without_calling_the_app(server, method, status):
    """A well-formed method token the server does not know is 501 (RFC 9110 section 9.1);
    a method that is not a token is a malformed request line, 400."""
    calls = app_calls(server)
    with server.client() as c:
        c.send(method.encode("latin-1") + b" /environ/ HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status == status, resp
        assert resp.header("connection") == "close"
        assert c.peer_closed(5)
    assert app_calls(server) == calls


def test_malformed_second_request_after_a_good_one(server):
    with server.client() as c:
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
    with server.client() as c:
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
    with limited.client() as c:
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
    with limited.client() as c:
        c.send(raw)
        resp = c.read_response(interim=True)
        assert resp.status == 413
        assert c.peer_closed(5)


def test_chunked_body_over_max_body_size_gets_413(limited):
    calls = app_calls(limited)
    parts = [b"c" * 1000 for _ in range(BODY_LIMIT // 1000 + 2)]
    raw = build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")]) + chunked(*parts)
    with limited.client() as c:
        c.send(raw, may_be_cut=True)
        resp = c.read_response()
        assert resp.status == 413
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(5)
    assert app_calls(limited) == calls


def test_body_at_max_body_size_is_accepted(limited):
    body = b"m" * BODY_LIMIT
    resp = limited.get("/echo/", method="POST", body=body)
    assert resp.status == 200 and resp.json()["length"] == BODY_LIMIT
