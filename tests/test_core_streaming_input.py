"""Streaming input (SPEC section 5): the app is called at the end of the head, reads what has
arrived, yields the would-block sentinel while nothing has, and is resumed by the server."""

import hashlib
import os
import socket
import time

import pytest

from tests.support import (RSS_MEANINGFUL, RawClient, ServerProcess, build_request, chunked,
                           get, unique_id)

RSS_LIMIT_KIB = 100 * 1024


@pytest.fixture(scope="module")
def streaming():
    """One process, four servers: stream_hash, stream_read, stream_ignore, and the router
    (plain apps) with stream_input=True."""
    srv = ServerProcess("tests.apps:stream_hash", "tests.apps:stream_read",
                        "tests.apps:stream_ignore", "tests.apps:router",
                        s3_stream_input=True).start()
    yield srv
    srv.stop()


def client(srv, index):
    return srv.client(index)


def port(srv, index):
    return srv.listening[index][1]


HASH, READ, IGNORE, ROUTER = range(4)


def test_streaming_app_gets_the_whole_body(streaming):
    body = os.urandom(300000)
    with client(streaming, HASH) as c:
        c.request("POST", "/", body=body)
        data = c.read_response().json()
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")],
                             chunked(body[:1000], body[1000:200000], body[200000:])))
        chunked_data = c.read_response().json()
    for d in (data, chunked_data):
        assert d["length"] == len(body)
        assert d["sha256"] == hashlib.sha256(body).hexdigest()
        assert d["same_key"] is True


def test_streaming_app_is_called_before_the_body_has_arrived(streaming):
    ident = unique_id()
    with client(streaming, HASH) as c:
        c.request("POST", "/?id=" + ident, content_length=10)
        assert streaming.wait_event(ident, "call"), "the app was not called at the end of the head"
        assert streaming.events(ident) == [["call"]]
        c.send(b"0123")
        time.sleep(0.2)
        assert ["done", "10"] not in streaming.events(ident)
        c.send(b"456789")
        data = c.read_response().json()
    assert data["length"] == 10 and data["waits"] >= 1
    assert streaming.wait_event(ident, "close")  # close() may come just after the response
    assert streaming.events(ident) == [["call"], ["done", "10"], ["close"]]


def test_others_are_served_while_a_streaming_upload_waits(streaming):
    ident = unique_id()
    with client(streaming, HASH) as c:
        c.send(build_request("POST", "/?id=" + ident, [("Transfer-Encoding", "chunked")])
               + b"5\r\nhello\r\n")
        assert streaming.wait_event(ident, "call")
        for i in range(5):  # same process, same loop thread
            assert get(port(streaming, ROUTER), "/environ/x%d" % i).status == 200
            assert get(port(streaming, IGNORE), "/").body == b"not read.\n"
        c.send(b"6\r\n world\r\n0\r\n\r\n")
        data = c.read_response().json()
    assert data["length"] == 11
    assert data["sha256"] == hashlib.sha256(b"hello world").hexdigest()


def test_streamed_body_sent_slowly_is_read_in_pieces(streaming):
    body = b"".join(b"line %03d\n" % i for i in range(40))
    with client(streaming, READ) as c:
        c.request("POST", "/?n=7", content_length=len(body))
        c.send_slowly(body, step=45, delay=0.02)
        data = c.read_response().json()
    assert data["body"] == body.decode()
    assert max(data["lengths"]) <= 7  # read(n) returns at most n
    assert data["blocked"] >= 1  # nothing was ready at times: BlockingIOError


def test_streamed_readline(streaming):
    body = b"first\nsecond line\n\nlast without newline"
    with client(streaming, READ) as c:
        c.request("POST", "/?mode=readline", content_length=len(body))
        c.send_slowly(body, step=5, delay=0.01)
        data = c.read_response().json()
    assert "".join(data["lines"]) == body.decode()
    for line in data["lines"][:-1]:  # what arrived: never more than one line per call
        assert line.count("\n") <= 1 and ("\n" not in line or line.endswith("\n"))


def test_streaming_upload_of_100mb_in_constant_memory(streaming):
    piece = os.urandom(1 << 20)
    hasher = hashlib.sha256()
    rss = []
    with client(streaming, HASH) as c:
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")]))
        for i in range(100):
            data = piece[i:] + piece[:i]
            hasher.update(data)
            c.send(b"%x\r\n%s\r\n" % (len(data), data))
            if i % 10 == 0:
                rss.append(streaming.rss_kib())
        c.send(b"0\r\n\r\n")
        result = c.read_response().json()
    assert result["length"] == 100 << 20
    assert result["sha256"] == hasher.hexdigest()
    assert not RSS_MEANINGFUL or max(rss) < RSS_LIMIT_KIB, rss


def resumptions(srv, ident):
    counts = [int(e[1]) for e in srv.events(ident) if e[0] == "resumed"]
    return max(counts) if counts else 0


def test_streaming_read_ahead_is_bounded(streaming):
    # The app stops reading; the client pushes as much as the server will take: the server
    # must stop reading (back-pressure), so the client's send must block.
    ident = unique_id()
    with client(streaming, READ) as c:
        c.request("POST", "/?mode=stall&id=" + ident, [("Expect", "100-continue")],
                  content_length=1 << 30)
        assert c.read_head().status == 100  # the app read once
        c.sock.settimeout(0.5)
        sent = 0
        for _ in range(4096):  # at most 256 MiB
            try:
                sent += c.sock.send(b"z" * 65536)
            except (BlockingIOError, socket.timeout, OSError):
                break
        assert sent < 200 << 20, "the server read %d bytes ahead of the app" % sent
        assert not RSS_MEANINGFUL or streaming.rss_kib() < RSS_LIMIT_KIB
        assert "gave-up" not in [e[0] for e in streaming.events(ident)]


def test_stalled_streaming_app_is_not_resumed_without_new_data(streaming):
    # SPEC 5: next() is called again when body data, its end or an error arrives, not in a
    # loop.  The app yields the sentinel and never reads; nothing more is sent.
    ident = unique_id()
    with client(streaming, READ) as c:
        c.request("POST", "/?mode=stall&id=" + ident, content_length=100)
        c.send(b"x" * 10)
        assert streaming.wait_event(ident, "resumed")
        time.sleep(1.5)
        resumed = resumptions(streaming, ident)
        assert resumed < 1000, "resumed %d times with no new data" % resumed
        assert "gave-up" not in [e[0] for e in streaming.events(ident)]


def test_100_continue_is_sent_when_the_streaming_app_reads(streaming):
    with client(streaming, HASH) as c:
        c.request("POST", "/", [("Expect", "100-continue")], content_length=5)
        interim = c.read_head()
        assert interim.status == 100
        c.send(b"abcde")
        assert c.read_response().json()["length"] == 5


def test_100_continue_is_not_sent_when_the_streaming_app_does_not_read(streaming):
    with client(streaming, IGNORE) as c:
        c.request("POST", "/", [("Expect", "100-continue")], content_length=5)
        resp = c.read_response(interim=True)
        assert resp.status == 200 and resp.body == b"not read.\n"


def test_unread_streamed_body_does_not_become_a_request(streaming):
    smuggled = build_request("GET", "/smuggled")
    with client(streaming, IGNORE) as c:
        c.request("POST", "/", body=smuggled)
        assert c.read_response().body == b"not read.\n"
        # Either the body is skipped and the connection reused, or it is closed.
        if not c.peer_closed(0.3):
            c.request("GET", "/")
            assert c.read_response().body == b"not read.\n"
            assert c.nothing_received(0.2)


def test_client_leaving_mid_body_raises_client_disconnected(streaming):
    ident = unique_id()
    c = RawClient(*streaming.listening[HASH])
    c.request("POST", "/?id=" + ident, content_length=100000)
    c.send(b"x" * 1000)
    assert streaming.wait_event(ident, "call")
    time.sleep(0.1)
    c.close()
    assert streaming.wait_event(ident, "raised"), streaming.events(ident)
    assert ["raised", "ClientDisconnected", "True"] in streaming.events(ident)  # an OSError
    assert streaming.wait_event(ident, "close")
    assert [e[0] for e in streaming.events(ident)].count("close") == 1


def test_streamed_body_over_the_limit_raises_request_too_large_and_gets_413(server_factory):
    srv = server_factory("tests.apps:stream_hash", max_body_size=10000)
    ident = unique_id()
    with srv.client() as c:
        try:
            c.send(build_request("POST", "/?id=" + ident, [("Transfer-Encoding", "chunked")])
                   + chunked(*[b"y" * 1000 for _ in range(20)]))
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = c.read_response()
        assert resp.status == 413
    assert srv.wait_event(ident, "raised")
    assert srv.events(ident)[1][:2] == ["raised", "RequestTooLarge"]


def test_sentinel_is_one_object_per_server(streaming):
    ids = set()
    for _ in range(3):
        ids.add(get(port(streaming, HASH), "/", method="POST", body=b"a").json()["sentinel_id"])
    assert len(ids) == 1


def test_stream_input_option_applies_to_plain_apps(streaming):
    env = get(port(streaming, ROUTER), "/environ/").json()
    assert "aiowsgi.input_sentinel" in env
    assert "wsgi.input_sentinel" in env
    assert env["_body"] == ""  # read() at the end of an empty body: b""


def test_streamed_requests_pipelined_in_one_write(streaming):
    bodies = [os.urandom(n) for n in (0, 1, 5000, 70000)]
    raw = b""
    for i, body in enumerate(bodies):
        if i % 2:
            raw += build_request("POST", "/", [("Transfer-Encoding", "chunked")],
                                 chunked(body[:7], body[7:], trailers=[("X-T", "1")]))
        else:
            raw += build_request("POST", "/", [("Content-Length", str(len(body)))], body)
    with client(streaming, HASH) as c:
        c.send(raw)
        for body in bodies:
            data = c.read_response().json()
            assert data["length"] == len(body)
            assert data["sha256"] == hashlib.sha256(body).hexdigest()
