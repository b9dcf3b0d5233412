"""Streaming input (SPEC section 5): a marked app (or every app, with ``stream_input``) is
called at the end of the head, iterates or reads what has arrived, yields the would-block
sentinel while nothing has, and is resumed by the server when more body, its end or an error
comes; read-ahead is bounded, 100 Continue goes out when the app first reads, a client that
leaves or a body over the limit raise inside the app.

The apps are the ``stream_*`` apps of tests/support/apps.py, behind ``stream_router``; they
record what they see (``data``, ``sentinel``, ``raised``, ``done``, ``close``) under their
``?id=``.  Figures are printed: run with ``pytest -s`` to see them.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.support.client import (LAST_CHUNK, assert_served_promptly, build_request, chunk,
                                  chunked, timed_request)
from tests.support.server import ROUTER, RSS_MEANINGFUL, sample_while, unique_id
from tests.support.waits import wait_for

STREAM_ROUTER = "tests.support.apps:stream_router"
RSS_LIMIT_KIB = 100 * 1024
UPLOAD_MB = int(os.environ.get("UPLOAD_MB", "1024"))  # the size of the soak's huge upload


@pytest.fixture
def streaming(shared_server):
    return shared_server(STREAM_ROUTER)


def payload(n, seed=0):
    """``n`` deterministic bytes that do not repeat within 64 KiB (cheap to make)."""
    block = hashlib.sha256(b"%d" % seed).digest() * 2048
    return (block * (n // len(block) + 1))[:n]


def sha(data):
    return hashlib.sha256(data).hexdigest()


# -- the app sees the body as it arrives ------------------------------------------------------

def test_content_length_body_reaches_the_app_before_it_is_complete(streaming):
    ident = unique_id()
    first, rest = payload(30000, 1), payload(50000, 2)
    with streaming.client() as c:
        c.request("POST", "/stream_hash/?id=" + ident, content_length=len(first) + len(rest))
        assert streaming.wait_event(ident, "call"), "the app was not called at the end of the head"
        assert streaming.events(ident)[:1] == [["call"]]
        c.send(first)
        # the app sees the first part while the rest is not even sent
        assert streaming.wait_event(ident, "data", len(first)), streaming.events(ident)
        assert not streaming.count_events(ident, "done")
        c.send(rest)
        result = c.read_response().json()
    assert result["length"] == len(first) + len(rest)
    assert result["sha256"] == sha(first + rest)
    assert result["waits"] >= 1
    assert result["content_length"] == str(len(first) + len(rest))
    assert result["same_key"] is True  # aiowsgi.input_sentinel is wsgi.input_sentinel
    assert streaming.wait_event(ident, "close")  # close() may come just after the response
    assert [e[0] for e in streaming.events(ident) if e[0] in ("call", "done", "close")] == [
        "call", "done", "close"]


def test_chunked_body_reaches_the_app_decoded_before_it_is_complete(streaming):
    ident = unique_id()
    parts = [payload(1000, 3), payload(20000, 4), payload(7, 5)]
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]) + chunk(parts[0]))
        assert streaming.wait_event(ident, "data", len(parts[0])), streaming.events(ident)
        c.send(chunk(parts[1]) + chunk(parts[2]) + LAST_CHUNK)
        result = c.read_response().json()
    assert result["length"] == sum(map(len, parts))
    assert result["sha256"] == sha(b"".join(parts))


def test_echo_streams_both_ways(streaming):
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_echo/", [("Transfer-Encoding", "chunked")])
               + chunk(b"ping-1"))
        head = c.read_head()
        assert head.status == 200 and head.header("Transfer-Encoding") == "chunked"
        # the first piece comes back before the client has sent the rest
        assert c.read_chunk() == (6, b"ping-1")
        c.send(chunk(b"pong-22") + LAST_CHUNK)
        assert c.read_chunk() == (7, b"pong-22")
        assert c.read_chunk() == (0, b"")


def test_streaming_upload_of_100mb_in_constant_memory(streaming):
    piece = os.urandom(1 << 20)
    hasher = hashlib.sha256()
    rss = []
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/", [("Transfer-Encoding", "chunked")]))
        for i in range(100):
            data = piece[i:] + piece[:i]
            hasher.update(data)
            c.send(chunk(data))
            if i % 10 == 0:
                rss.append(streaming.rss_kib())
        c.send(LAST_CHUNK)
        result = c.read_response().json()
    assert result["length"] == 100 << 20
    assert result["sha256"] == hasher.hexdigest()
    assert not RSS_MEANINGFUL or max(rss) < RSS_LIMIT_KIB, rss


def test_concurrent_interleaved_uploads_each_get_their_own_body(streaming):
    clients = [streaming.client() for _ in range(8)]
    bodies = [payload(150_000 + 1000 * i, 100 + i) for i in range(8)]
    try:
        for i, c in enumerate(clients):
            framing = ("Transfer-Encoding", "chunked") if i % 2 else (
                "Content-Length", str(len(bodies[i])))
            c.send(build_request("PUT", "/stream_hash/", [framing]))
        step = 7_000
        for off in range(0, max(map(len, bodies)), step):
            for i, c in enumerate(clients):
                piece = bodies[i][off:off + step]
                if piece:
                    c.send(chunk(piece) if i % 2 else piece)
        for i, c in enumerate(clients):
            if i % 2:
                c.send(LAST_CHUNK)
        for i, c in enumerate(clients):
            result = c.read_response().json()
            assert (result["length"], result["sha256"]) == (len(bodies[i]), sha(bodies[i]))
    finally:
        for c in clients:
            c.close()


def test_streamed_requests_pipelined_in_one_write(streaming):
    bodies = [payload(n, n) for n in (0, 1, 5000, 70000, 200_000)]
    raw = b""
    for i, body in enumerate(bodies):
        if i % 2:
            raw += build_request("POST", "/stream_hash/", [("Transfer-Encoding", "chunked")],
                                 chunked(body[:7], body[7:], trailers=[("X-T", "1")]))
        else:
            raw += build_request("POST", "/stream_hash/", [("Content-Length", str(len(body)))],
                                 body)
        raw += build_request("GET", "/hello/")
    with streaming.client() as c:
        c.send(raw)
        for body in bodies:
            result = c.read_response().json()
            assert (result["length"], result["sha256"]) == (len(body), sha(body))
            assert c.read_response().body == b"Hello, world!\n"
        assert timed_request(c, "/hello/") < 5  # and the connection is still usable


def test_trailers_and_chunk_extensions_are_accepted(streaming):
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/", [("Transfer-Encoding", "chunked")])
               + b"3;name=value\r\nabc\r\n" + b"0\r\nX-Checksum: whatever\r\n\r\n"
               + build_request("GET", "/hello/"))
        assert c.read_response().json()["sha256"] == sha(b"abc")
        assert c.read_response().body == b"Hello, world!\n"


@pytest.mark.parametrize("framing", [("Content-Length", "0"), ("Transfer-Encoding", "chunked")])
def test_empty_body_ends_at_once(streaming, framing):
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/", [framing])
               + (LAST_CHUNK if framing[0] == "Transfer-Encoding" else b""))
        result = c.read_response().json()
    assert result["length"] == 0
    if framing[0] == "Content-Length":  # known to be empty at the head: no wait at all
        assert result["waits"] == 0


def test_request_without_body_gets_an_empty_input_at_its_end(streaming):
    result = streaming.get("/stream_read/?n=10").json()
    assert (result["lengths"], result["blocked"], result["empty_after_end"]) == ([], 0, True)


# -- read(), readline(), readlines() ------------------------------------------------------------

def test_read_n_returns_at_most_n_of_what_is_buffered_and_empty_at_the_end(streaming):
    data = payload(100_000, 9)
    with streaming.client() as c:
        c.request("POST", "/stream_read/?n=1000", content_length=len(data))
        time.sleep(0.2)  # the app has run and found nothing: BlockingIOError, sentinel
        c.send(data[:50_000])
        time.sleep(0.2)
        c.send_slowly(data[50_000:], step=7000, delay=0.005)
        result = c.read_response().json()
    assert result["sha256"] == sha(data)
    assert 0 < max(result["lengths"]) <= 1000
    assert result["blocked"] >= 1
    assert result["empty_after_end"]


def test_read_without_size_returns_what_is_buffered(streaming):
    data = payload(300_000, 10)
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_read/", [("Transfer-Encoding", "chunked")]))
        for i in range(0, len(data), 60_000):
            c.send(chunk(data[i:i + 60_000]))
            time.sleep(0.05)
        c.send(LAST_CHUNK)
        result = c.read_response().json()
    assert result["sha256"] == sha(data)
    assert result["blocked"] >= 1
    assert max(result["lengths"]) < len(data)  # it did not wait for the whole body
    assert result["empty_after_end"]


def test_readline_returns_lines_as_they_arrive(streaming):
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_read/?mode=readline",
                             [("Transfer-Encoding", "chunked")]) + chunk(b"one\ntw"))
        time.sleep(0.2)
        c.send(chunk(b"o\nthree\n") + chunk(b"no newline at the end"))
        time.sleep(0.1)
        c.send(LAST_CHUNK)
        result = c.read_response().json()
    # what is buffered: a line may come in pieces, never two lines merged
    assert "".join(result["lines"]) == "one\ntwo\nthree\nno newline at the end"
    for piece in result["lines"][:-1]:
        assert "\n" not in piece[:-1]
    assert "one\n" in result["lines"] and "three\n" in result["lines"]
    assert result["empty_after_end"]


def test_readlines_returns_the_buffered_lines_and_loses_none(streaming):
    ident = unique_id()
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_read/?mode=readlines&id=" + ident,
                             [("Transfer-Encoding", "chunked")]) + chunk(b"line1\nline2\n"))
        time.sleep(0.3)
        c.send(chunk(b"line3\n") + LAST_CHUNK)
        result = c.read_response().json()
    assert result["body"] == "line1\nline2\nline3\n", result
    assert result["calls"][-1] == 0  # [] at the end of the body


def test_read_with_nothing_buffered_raises_blocking_io_error(streaming):
    ident = unique_id()
    with streaming.client() as c:
        c.request("POST", "/stream_hash/?first_read=1&id=" + ident, content_length=5)
        assert streaming.wait_event(ident, "call")
        time.sleep(0.1)
        c.send(b"abcde")
        result = c.read_response().json()
    assert result["first_read"] == "BlockingIOError"
    assert result["length"] == 5  # the failed read consumed nothing


# -- the sentinel and the loop ------------------------------------------------------------------

def test_sentinel_is_yielded_before_start_response_and_never_sent(streaming):
    ident = unique_id()
    with streaming.client() as c:
        c.request("POST", "/stream_hash/?id=" + ident, content_length=6)
        c.send(b"abc")
        assert streaming.wait_event(ident, "sentinel"), streaming.events(ident)
        assert c.nothing_received(0.3)  # the app has not started its response
        c.send(b"def")
        resp = c.read_response()
    assert resp.json()["sha256"] == sha(b"abcdef")
    assert int(resp.header("Content-Length")) == len(resp.body)


def test_sentinel_is_one_object_per_server(streaming):
    ids = {streaming.get("/stream_hash/", method="POST", body=b"a").json()["sentinel_id"]
           for _ in range(3)}
    assert len(ids) == 1


def test_others_are_served_while_a_streaming_upload_waits(streaming):
    ident = unique_id()
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]) + chunk(b"hello"))
        assert streaming.wait_event(ident, "sentinel", 5)
        for i in range(5):  # same process, same loop thread
            assert streaming.get("/environ/x%d" % i).status == 200
            assert streaming.get("/stream_ignore/").body == b"not read.\n"
        c.send(chunk(b" world") + LAST_CHUNK)
        result = c.read_response().json()
    assert result["length"] == 11 and result["sha256"] == sha(b"hello world")


def resumptions(srv, ident):
    counts = [int(e[1]) for e in srv.events(ident) if e[0] == "resumed"]
    return max(counts) if counts else 0


def test_stalled_streaming_app_is_not_resumed_without_new_data(streaming):
    # next() is called again when body data, its end or an error arrives, not in a loop.
    # The app yields the sentinel and never reads; nothing more is sent.
    ident = unique_id()
    with streaming.client() as c:
        c.request("POST", "/stream_read/?mode=stall&id=" + ident, content_length=100)
        c.send(b"x" * 10)
        assert streaming.wait_event(ident, "resumed")
        time.sleep(1.5)
        resumed = resumptions(streaming, ident)
        assert resumed < 1000, "resumed %d times with no new data" % resumed
        assert not streaming.count_events(ident, "gave-up")


def test_write_between_sentinels_sends_progress_as_the_body_arrives(streaming):
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_progress/", [("Transfer-Encoding", "chunked")])
               + chunk(b"a" * 10))
        head = c.read_head()
        assert head.status == 200 and head.header("Transfer-Encoding") == "chunked"
        assert c.read_chunk() == (3, b"10\n")
        c.send(chunk(b"b" * 5) + LAST_CHUNK)
        assert [c.read_chunk() for _ in range(3)] == [(3, b"15\n"), (8, b"done 15\n"), (0, b"")]


# -- read-ahead is bounded --------------------------------------------------------------------

def fill_read_ahead(srv, ident):
    """A client whose app reads once and then stalls (``/stream_read/?mode=stall``) pushes as
    much of a 1 GiB body as the server takes; returns the client and how much it sent."""
    c = srv.client()
    c.request("POST", "/stream_read/?mode=stall&id=" + ident, [("Expect", "100-continue")],
              content_length=1 << 30)
    assert c.read_head().status == 100  # the app read once
    c.sock.settimeout(0.5)
    sent = 0
    for _ in range(4096):  # at most 256 MiB
        try:
            sent += c.sock.send(b"z" * 65536)
        except (BlockingIOError, socket.timeout, OSError):
            break
    return c, sent


def test_read_ahead_is_bounded_when_the_app_stops_reading(start):
    # The server must stop reading (back-pressure), so the client's send must block.
    srv = start.apps(STREAM_ROUTER)
    ident = unique_id()
    c, sent = fill_read_ahead(srv, ident)
    with c:
        assert sent < 200 << 20, "the server read %d bytes ahead of the app" % sent
        assert not RSS_MEANINGFUL or srv.rss_kib() < RSS_LIMIT_KIB
        assert not srv.count_events(ident, "gave-up")
    srv.kill()  # its app waits for a body that never comes: a graceful stop would wait for it


def test_client_leaving_while_the_read_ahead_is_full_ends_the_request(start):
    srv = start.apps(STREAM_ROUTER)
    ident = unique_id()
    c, _ = fill_read_ahead(srv, ident)
    c.abort()
    try:
        assert srv.wait_event(ident, "close", timeout=3), srv.events(ident)
    finally:
        srv.kill()


def test_read_ahead_is_bounded_when_the_app_cannot_send(start):
    """/stream_echo/ sends every piece back; a client that uploads without reading the answer
    fills the send queue, the app is no longer pulled, the server stops reading, and the
    client's send blocks, instead of the server buffering the upload."""
    srv = start.apps(STREAM_ROUTER)
    ident = unique_id()
    rss_before = srv.rss_kib()
    with srv.client() as c:
        c.send(build_request("POST", "/stream_echo/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]))
        c.sock.setblocking(False)
        piece = chunk(payload(65536, 15))
        sent, stalled_since, left = 0, None, memoryview(b"")
        deadline = time.monotonic() + 30
        while sent < 512 * 1024 * 1024 and time.monotonic() < deadline:
            if not left:
                left = memoryview(piece)
            try:
                n = c.sock.send(left)
                left, sent, stalled_since = left[n:], sent + n, None
            except BlockingIOError:
                if stalled_since is None:
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > 0.5:
                    break
                time.sleep(0.01)
        rss_peak = srv.rss_kib()
        print("\n[back-pressure] the client could send %.1f MB before the server stopped "
              "reading; server RSS %.1f -> %.1f MB"
              % (sent / 1e6, rss_before / 1024, rss_peak / 1024))
        assert stalled_since is not None, "the server kept reading an upload nobody consumed"
        assert sent < 64 * 1024 * 1024  # socket buffers on both sides, plus bounded queues
        assert not RSS_MEANINGFUL or rss_peak - rss_before < 32 * 1024
    # the client left while the app was suspended on a full send queue: close() all the same
    assert srv.wait_event(ident, "close"), srv.events(ident)
    assert srv.get("/hello/").status == 200


# -- Expect: 100-continue ---------------------------------------------------------------------

@pytest.mark.parametrize("framing", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
def test_100_continue_is_sent_when_the_app_first_reads(streaming, framing):
    with streaming.client() as c:
        c.send(build_request("PUT", "/stream_hash/", [framing, ("Expect", "100-continue")]))
        assert c.read_head().status == 100
        c.send(chunk(b"hello") + LAST_CHUNK if framing[0] == "Transfer-Encoding" else b"hello")
        assert c.read_response().json()["sha256"] == sha(b"hello")


def test_100_continue_is_not_sent_when_the_app_never_reads(streaming):
    with streaming.client() as c:
        c.request("PUT", "/stream_ignore/", [("Expect", "100-continue")], content_length=5)
        resp = c.read_response(interim=True)  # a 100 would be the first response here
        assert resp.status == 200 and resp.body == b"not read.\n"
        # the body was never sent, so the connection cannot carry another request
        assert "close" in resp.connection_tokens() or c.peer_closed(5)


def test_http10_body_streams_and_gets_no_100_continue(streaming):
    with streaming.client() as c:
        c.send(b"POST /stream_hash/ HTTP/1.0\r\nContent-Length: 6\r\nExpect: 100-continue"
               b"\r\n\r\n")
        time.sleep(0.2)
        c.send(b"abcdef")
        resp = c.read_response(interim=True)
    assert resp.status == 200  # no 100 for an HTTP/1.0 client
    assert resp.json()["sha256"] == sha(b"abcdef")


def test_unread_streamed_body_does_not_become_a_request(streaming):
    smuggled = build_request("GET", "/hello/smuggled")
    with streaming.client() as c:
        c.request("POST", "/stream_ignore/", body=smuggled)
        assert c.read_response().body == b"not read.\n"
        # Either the body is skipped and the connection reused, or it is closed.
        if not c.peer_closed(0.3):
            c.request("GET", "/stream_ignore/")
            assert c.read_response().body == b"not read.\n"
            assert c.nothing_received(0.2)


# -- errors: the client leaves, the body is too large or malformed, the app fails ---------------

def test_client_leaving_mid_body_raises_client_disconnected_and_closes(start):
    srv = start.apps(STREAM_ROUTER)
    ident = unique_id()
    with srv.client() as hello:
        assert timed_request(hello) < 1  # warm: later fd counts compare like with like
        fds_before = srv.open_fds()
        c = srv.client()
        c.request("POST", "/stream_hash/?id=" + ident, content_length=100000)
        c.send(payload(30_000, 13))
        assert srv.wait_event(ident, "sentinel"), srv.events(ident)
        c.close()
        assert srv.wait_event(ident, "raised"), srv.events(ident)
        raised = [e for e in srv.events(ident) if e[0] == "raised"][0]
        assert raised[1:3] == ["ClientDisconnected", "True"]  # an OSError
        assert srv.wait_event(ident, "close")
        assert srv.count_events(ident, "close") == 1
        assert wait_for(lambda: srv.open_fds() == fds_before), (srv.open_fds(), fds_before)
        assert timed_request(hello) < 1  # the server is fine


def test_many_clients_leaving_mid_body_leak_no_fds(start):
    srv = start.apps(STREAM_ROUTER)
    idents = [unique_id() for _ in range(30)]
    with srv.client() as hello:
        timed_request(hello)
        fds_before = srv.open_fds()
        for i, ident in enumerate(idents):
            with srv.client() as c:
                framing = ("Transfer-Encoding", "chunked") if i % 2 else (
                    "Content-Length", "50000")
                c.send(build_request("POST", "/stream_hash/?id=" + ident, [framing])
                       + (chunk(b"x" * 1000) if i % 2 else b"x" * 1000))
        assert wait_for(lambda: all(srv.count_events(i, "close") for i in idents))
        assert wait_for(lambda: srv.open_fds() == fds_before), (srv.open_fds(), fds_before)
        assert timed_request(hello) < 1


@pytest.fixture
def limited(shared_server):
    return shared_server(STREAM_ROUTER, max_body_size=100_000)


def test_chunked_body_over_max_body_size_raises_request_too_large_and_gets_413(limited):
    ident = unique_id()
    with limited.client() as c:
        c.send(build_request("POST", "/stream_hash/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]))
        for _ in range(20):
            if not c.send(chunk(b"y" * 10_000), may_be_cut=True):
                break
        resp = c.read_response()
        assert resp.status == 413, resp
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(5), "the connection was left open after the 413"
    assert limited.wait_event(ident, "raised"), limited.events(ident)
    raised = [e for e in limited.events(ident) if e[0] == "raised"][0]
    assert raised[1] == "RequestTooLarge" and int(raised[3]) <= 100_000
    assert limited.wait_event(ident, "close")


def test_content_length_over_max_body_size_gets_413_without_calling_the_app(limited):
    ident = unique_id()
    with limited.client() as c:
        c.request("POST", "/stream_hash/?id=" + ident, content_length=100_001)
        resp = c.read_response()
    assert resp.status == 413 and "close" in resp.connection_tokens()
    assert limited.events(ident) == []


def test_body_of_exactly_max_body_size_is_accepted(limited):
    data = payload(100_000, 14)
    with limited.client() as c:
        c.send(build_request("POST", "/stream_hash/", [("Transfer-Encoding", "chunked")])
               + chunk(data) + LAST_CHUNK)
        assert c.read_response().json()["length"] == 100_000


def test_malformed_chunked_body_mid_stream_is_a_400_and_the_connection_closes(streaming):
    """The app was called at the head; then the body's framing turns out bad (a chunk longer
    than its size).  The app's read fails with an OSError, and the client gets 400 and a
    closed connection, as for any malformed request (SPEC 4)."""
    ident = unique_id()
    with streaming.client() as c:
        c.send(build_request("POST", "/stream_hash/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]) + chunk(b"abc"))
        assert streaming.wait_event(ident, "sentinel", 3), streaming.events(ident)
        c.send(b"5\r\nabcdefgh\r\n0\r\n\r\n")
        resp = c.read_response()
        assert c.peer_closed(5), "the connection was left open after the answer"
    assert streaming.wait_event(ident, "raised")
    assert [e[2] for e in streaming.events(ident) if e[0] == "raised"] == ["True"]  # OSError
    assert streaming.wait_event(ident, "close")
    assert (resp.status, resp.header("Connection")) == (400, "close")


def test_app_error_mid_body_is_a_500_and_the_server_goes_on(streaming):
    ident = unique_id()
    with streaming.client() as c:
        c.request("POST", "/stream_fail/?id=" + ident, content_length=100000)
        c.send(b"z" * 1000)
        resp = c.read_response()
        assert resp.status == 500
        assert "close" in resp.connection_tokens() or c.peer_closed(5)
    assert streaming.wait_stderr("ValueError: the app failed after")
    assert streaming.wait_event(ident, "close")
    assert streaming.get("/hello/").status == 200


# -- the option, and apps that are not marked -------------------------------------------------

def test_stream_input_option_streams_apps_that_are_not_marked(shared_server):
    srv = shared_server(ROUTER, stream_input=True)  # the router itself is not marked
    env = srv.get("/environ/").json()
    assert "aiowsgi.input_sentinel" in env and "wsgi.input_sentinel" in env
    assert env["_body"] == ""  # read() at the end of an empty body: b""
    ident = unique_id()
    with srv.client() as c:
        c.request("POST", "/stream_hash/?id=" + ident, content_length=10)
        c.send(b"01234")
        assert srv.wait_event(ident, "data", 5), srv.events(ident)
        c.send(b"56789")
        assert c.read_response().json()["sha256"] == sha(b"0123456789")


def test_app_that_is_not_marked_gets_the_whole_body_and_no_sentinel(server):
    ident = unique_id()
    with server.client() as c:
        c.request("POST", "/environ/?id=" + ident, content_length=10)
        c.send(b"01234")
        time.sleep(0.3)
        assert not [e for e in server.events("router") if ident in e[-1]]  # not called yet
        c.send(b"56789")
        env = c.read_response().json()
    assert env["_body"] == "0123456789"
    assert "aiowsgi.input_sentinel" not in env


# -- benchmark-like: behind the soak marker ---------------------------------------------------

@pytest.mark.soak
def test_pause_mid_body_leaves_the_loop_idle_and_others_served_promptly(start):
    srv = start.apps(STREAM_ROUTER)
    ident = unique_id()
    first, second = payload(40_000, 11), payload(40_000, 12)
    with srv.client() as c, srv.client() as other:
        c.send(build_request("POST", "/stream_hash/?id=" + ident,
                             [("Transfer-Encoding", "chunked")]) + chunk(first))
        assert srv.wait_event(ident, "sentinel", len(first)), srv.events(ident)
        cpu0, t0 = srv.cpu_seconds(), time.monotonic()
        latencies = []
        while time.monotonic() - t0 < 1.0 and len(latencies) < 20:
            latencies.append(timed_request(other))
            time.sleep(0.1)
        cpu_hello = srv.cpu_seconds() - cpu0
        cpu1 = srv.cpu_seconds()
        time.sleep(1.0)  # a second of pause with nothing else to do: epoll_wait sleeps
        cpu_idle = srv.cpu_seconds() - cpu1
        c.send(chunk(second) + LAST_CHUNK)
        result = c.read_response().json()
    print("\n[pause] hello during pause: max %.1f ms over %d requests; server CPU over 1 s of "
          "pause with no other client: %.3f s (with hellos: %.3f s)"
          % (max(latencies) * 1000, len(latencies), cpu_idle, cpu_hello))
    assert result["sha256"] == sha(first + second) and result["waits"] >= 1
    assert_served_promptly(latencies)
    assert cpu_idle <= 0.05


UPLOADER = textwrap.dedent('''
    import hashlib, json, socket, sys, time
    port, total = int(sys.argv[1]), int(sys.argv[2])
    block = bytearray(hashlib.sha256(b"seed").digest() * 32768)   # 1 MiB


    def pieces():
        # the same bytes every time, each MiB different, never all in memory
        sent, i = 0, 0
        while sent < total:
            block[:8] = i.to_bytes(8, "little")
            piece = bytes(block[:min(len(block), total - sent)])
            yield piece
            sent += len(piece)
            i += 1


    # hash first, so that while the upload runs this process only sends (it shares the
    # machine's cores with the server being measured)
    digest = hashlib.sha256()
    for piece in pieces():
        digest.update(piece)
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    print("start", flush=True)
    t0 = time.monotonic()
    sock.sendall(b"PUT /upload HTTP/1.1\\r\\nHost: test\\r\\nTransfer-Encoding: chunked\\r\\n"
                 b"Connection: close\\r\\n\\r\\n")
    sent = 0
    for piece in pieces():
        sock.sendall(b"%x\\r\\n" % len(piece) + piece + b"\\r\\n")
        sent += len(piece)
    sock.sendall(b"0\\r\\n\\r\\n")
    answer = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    elapsed = time.monotonic() - t0
    print(json.dumps({"expected": digest.hexdigest(), "bytes": sent, "seconds": elapsed,
                      "answer": answer.decode("latin-1")}))
''')


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_huge_chunked_upload_in_constant_memory_while_others_are_served(start, tmp_path):
    """The issue's headline: examples/upload_hash.py hashes a 1 GiB (UPLOAD_MB) chunked upload
    in constant memory while the same single-threaded worker answers others."""
    total = UPLOAD_MB * 1024 * 1024
    srv = start.script("examples/upload_hash.py", "127.0.0.1:0")
    uploader_py = tmp_path / "uploader.py"
    uploader_py.write_text(UPLOADER)
    out_path = tmp_path / "uploader.out"
    with srv.client() as hello:
        for _ in range(3):  # warm up: the loop is in steady state
            timed_request(hello, "/")
        rss_start = srv.rss_kib()
        with open(out_path, "w") as out:
            up = subprocess.Popen([sys.executable, str(uploader_py), str(srv.port), str(total)],
                                  stdout=out, stderr=subprocess.STDOUT)
        try:
            # wait until the uploader has hashed its data and connected
            wait_for(lambda: up.poll() is not None or out_path.read_text().startswith("start"),
                     timeout=300)
            latencies, rss_peak = sample_while(lambda: up.poll() is None, srv, hello, "/")
            assert up.poll() is not None, "the upload did not finish in time"
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
    rss_peak = max(rss_peak, srv.rss_kib())
    report = json.loads(out_path.read_text().strip().splitlines()[-1])
    result = json.loads(report["answer"].split("\r\n\r\n", 1)[1])
    latencies.sort()
    print("\n[upload] %d MiB chunked upload to examples/upload_hash.py: %.1f s (%.0f MB/s); "
          "server RSS %.1f MB at start, %.1f MB peak; %d hello requests during the upload: "
          "median %.2f ms, max %.2f ms"
          % (UPLOAD_MB, report["seconds"], total / report["seconds"] / 1e6, rss_start / 1024,
             rss_peak / 1024, len(latencies), latencies[len(latencies) // 2] * 1000,
             latencies[-1] * 1000))
    assert result == {"sha256": report["expected"], "bytes": total}
    assert not RSS_MEANINGFUL or rss_peak < 64 * 1024
    assert len(latencies) >= 3
    assert_served_promptly(latencies)
