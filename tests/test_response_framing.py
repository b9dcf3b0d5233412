"""Response framing (SPEC section 4): the app's Content-Length, a computed one, chunked,
close-delimited, no body for HEAD, 1xx, 204 and 304; write(); the Date and Server headers; many
and large items and headers."""

import email.utils
import time
from urllib.parse import quote

import pytest

from tests.support.client import build_request


def scripted(*parts, kind="list", status=None, cl=None, headers=(), ident=None):
    qs = ["kind=" + kind] + ["part=" + quote(p, safe="") for p in parts]
    if status is not None:
        qs.append("status=" + quote(status, safe=""))
    if cl is not None:
        qs.append("cl=" + str(cl))
    qs += ["h=" + quote("%s:%s" % h, safe="") for h in headers]
    if ident:
        qs.append("id=" + ident)
    return "/scripted/?" + "&".join(qs)


def fetch(server, target, method="GET", version="HTTP/1.1", headers=()):
    """One request on a fresh connection; returns (response, client still open afterwards)."""
    with server.client() as c:
        c.request(method, target, headers, version=version)
        resp = c.read_response(method)
        return resp, not c.peer_closed(0.3)


def test_app_content_length_is_used(server):
    resp, _ = fetch(server, scripted("ab", "cde", cl=5))
    assert resp.framing == "length"
    assert resp.header("Content-Length") == "5"
    assert not resp.has_header("Transfer-Encoding")
    assert resp.body == b"abcde"


def test_app_content_length_with_a_generator_is_used_on_http11(server):
    resp, still_open = fetch(server, scripted("ab", "cd", kind="gen", cl=4))
    assert resp.framing == "length" and resp.body == b"abcd"
    assert still_open


@pytest.mark.parametrize("kind", ["list", "tuple"])
def test_single_item_sequence_gets_a_computed_content_length(server, kind):
    resp, still_open = fetch(server, scripted("single item body", kind=kind))
    assert resp.framing == "length"
    assert resp.header("Content-Length") == str(len("single item body"))
    assert resp.body == b"single item body"
    assert still_open


@pytest.mark.parametrize("kind", ["empty", "emptygen"])
def test_empty_body_keeps_the_connection_in_sync(server, kind):
    with server.client() as c:
        c.request("GET", "/scripted/?kind=" + kind)
        c.request("GET", "/environ/after")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"" and resp.complete
        if resp.framing == "length":
            assert resp.header("Content-Length") == "0"
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_generator_is_chunked_on_http11(server):
    resp, still_open = fetch(server, scripted("first;", "second;", "third", kind="gen"))
    assert resp.framing == "chunked"
    assert not resp.has_header("Content-Length")
    assert resp.body == b"first;second;third"
    assert resp.complete
    assert still_open


def test_multi_item_list_is_framed_on_http11(server):
    # SPEC asks for chunked; a length summed over the list is as good (the lead's choice).
    resp, still_open = fetch(server, scripted("a", "bc", "def"))
    assert resp.framing in ("chunked", "length") and resp.body == b"abcdef" and resp.complete
    if resp.framing == "length":
        assert resp.header("Content-Length") == "6"
    assert still_open


def test_empty_items_do_not_end_a_chunked_body_early(server):
    # An empty chunk "0\r\n\r\n" is the end of a chunked body: empty items must be skipped.
    with server.client() as c:
        c.request("GET", "/scripted/?kind=gen&part=&part=abc&part=&part=&part=def&part=")
        c.request("GET", "/environ/next")
        resp = c.read_response()
        assert resp.framing == "chunked"
        assert resp.body == b"abcdef"
        assert 0 not in resp.chunk_sizes[:-1]
        assert c.read_response().json()["PATH_INFO"] == "/environ/next"


def test_generator_is_close_delimited_on_http10(server):
    resp, still_open = fetch(server, scripted("first;", "second", kind="gen"),
                             version="HTTP/1.0")
    assert resp.framing == "close"
    assert not resp.has_header("Transfer-Encoding")
    assert resp.body == b"first;second"
    assert not still_open


def test_generator_on_http10_keep_alive_is_close_delimited(server):
    resp, still_open = fetch(server, scripted("x", "y", kind="gen"), version="HTTP/1.0",
                             headers=[("Connection", "keep-alive")])
    assert resp.framing == "close"
    assert resp.body == b"xy"
    assert "keep-alive" not in resp.connection_tokens()
    assert not still_open


def test_large_single_item_body(server):
    path = "/stream/?chunks=1&size=%d" % (5 * 1024 * 1024)  # a one-item generator: chunked
    resp, _ = fetch(server, path)
    assert len(resp.body) == 5 * 1024 * 1024 and resp.body == b"\x00" * (5 * 1024 * 1024)


@pytest.mark.parametrize("target", ["/hello/", "/scripted/?kind=gen&part=a&part=b",
                                    "/scripted/?kind=list&part=abc&cl=3",
                                    "/write_then_return/"])
def test_head_response_has_no_body(server, target):
    with server.client() as c:
        c.request("HEAD", target)
        c.request("GET", "/environ/after-head")
        head = c.read_response("HEAD")
        assert head.status == 200
        after = c.read_response()  # would fail to parse if the HEAD answer had body bytes
        assert after.json()["PATH_INFO"] == "/environ/after-head"


def test_head_keeps_the_app_content_length(server):
    with server.client() as c:
        c.request("HEAD", scripted("abc", cl=3))
        head = c.read_response("HEAD")
        assert head.header("Content-Length") == "3"
        assert c.nothing_received(0.3)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
@pytest.mark.parametrize("kind", ["list", "gen"])
def test_no_body_for_204_and_304(server, status, kind):
    target = scripted("", kind=kind, status=status)
    with server.client() as c:
        c.request("GET", target)
        c.request("GET", "/environ/after")
        resp = c.read_response()
        assert resp.status == int(status[:3])
        assert not resp.has_header("Transfer-Encoding")
        if resp.status == 204:
            assert not resp.has_header("Content-Length")  # RFC 9110 section 8.6
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_body_bytes_of_a_204_or_304_app_are_not_sent(server, status):
    with server.client() as c:
        c.request("GET", scripted("stray body", kind="gen", status=status))
        c.request("GET", "/environ/after")
        assert c.read_response().status == int(status[:3])
        after = c.read_response()  # the stray bytes would be parsed as a status line here
        assert after.json()["PATH_INFO"] == "/environ/after"


def test_100_continue_interim_response_has_no_body(server):
    with server.client() as c:
        c.request("POST", "/echo/", [("Expect", "100-continue")], content_length=3)
        interim = c.read_response(interim=True)
        assert interim.status == 100
        assert not interim.has_header("Content-Length")
        assert not interim.has_header("Transfer-Encoding")
        c.send(b"abc")
        assert c.read_response().json()["body"] == "abc"


def test_date_and_server_headers_are_added(server):
    resp, _ = fetch(server, "/hello/")
    assert resp.header("Server") == "aiowsgi"
    date = email.utils.parsedate_to_datetime(resp.header("Date"))
    assert resp.header("Date").endswith(" GMT")
    assert abs(date.timestamp() - time.time()) < 120  # a clock check, not a speed check


def test_date_is_current_on_a_long_lived_connection(server):
    with server.client() as c:
        c.request("GET", "/hello/")
        first = email.utils.parsedate_to_datetime(c.read_response().header("Date"))
        time.sleep(2.1)
        c.request("GET", "/hello/")
        second = email.utils.parsedate_to_datetime(c.read_response().header("Date"))
    assert second > first


def test_app_date_and_server_headers_are_not_replaced(server):
    date = "Tue, 01 Jan 2030 00:00:00 GMT"
    resp, _ = fetch(server, scripted("x", headers=[("Server", "custom/1.0"), ("date", date)]))
    assert resp.header_list("Server") == ["custom/1.0"]
    assert resp.header_list("Date") == [date]


def test_app_headers_are_sent_in_order_with_their_case(server):
    resp, _ = fetch(server, scripted("x", headers=[("X-First", "1"), ("x-second", "2"),
                                                   ("X-First", "3"), ("Set-Cookie", "a=1"),
                                                   ("Set-Cookie", "b=2")]))
    app_headers = [h for h in resp.headers if h[0].lower() in ("x-first", "x-second",
                                                                "set-cookie")]
    assert app_headers == [("X-First", "1"), ("x-second", "2"), ("X-First", "3"),
                           ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]


def test_status_line_keeps_the_app_reason_phrase(server):
    resp, _ = fetch(server, scripted("x", status="299 Custom Reason Here"))
    assert resp.status == 299 and resp.reason == "Custom Reason Here"
    assert resp.raw_head.startswith(b"HTTP/1.1 299 Custom Reason Here\r\n")


def test_content_length_shorter_than_body_truncates_the_body(server):
    with server.client() as c:
        c.request("GET", scripted("abc", "def", cl=4, kind="gen"))
        resp = c.read_response()
        assert resp.body == b"abcd"
        # The extra bytes must not be sent: the connection is either closed or ready for a
        # next request whose answer parses cleanly.
        if not c.peer_closed(0.5):
            assert not c.buf, bytes(c.buf)
            c.request("GET", "/environ/next")
            assert c.read_response().json()["PATH_INFO"] == "/environ/next"
        else:
            assert not c.buf, bytes(c.buf)


def test_content_length_longer_than_body_cuts_the_connection(server):
    with server.client() as c:
        c.request("GET", scripted("abc", "def", cl=100, kind="gen"))
        resp = c.read_response()
        assert resp.body == b"abcdef"
        assert not resp.complete
        assert c.eof


def test_server_keeps_serving_after_a_content_length_mismatch(server):
    fetch(server, scripted("abc", cl=10, kind="gen"))
    resp, _ = fetch(server, "/hello/")
    assert resp.body == b"Hello, world!\n"


def test_write_from_start_response(server):
    resp, _ = fetch(server, scripted("w1;", "w2;", "w3", kind="write"))
    assert resp.status == 200
    assert resp.body == b"w1;w2;w3"
    resp, _ = fetch(server, "/write_then_return/")
    assert resp.body == b"written-1;written-2;returned"
    resp, _ = fetch(server, scripted("w;", "g1;", "g2", kind="writegen"))
    assert resp.body == b"w;g1;g2"


def test_write_with_app_content_length(server):
    resp, still_open = fetch(server, scripted("12345", "678", kind="write", cl=8))
    assert resp.framing == "length" and resp.body == b"12345678"
    assert still_open


def test_write_on_http10_is_close_delimited(server):
    resp, still_open = fetch(server, scripted("a", "b", kind="write"), version="HTTP/1.0")
    assert resp.body == b"ab" and resp.framing == "close" and not still_open




def test_pipelined_responses_of_every_framing_stay_in_sync(server):
    requests = [scripted("a", "b", kind="gen"), scripted("one"), scripted("xyz", cl=3),
                scripted("w", kind="write"), "/hello/"]
    with server.client() as c:
        c.send(b"".join(build_request("GET", t) for t in requests))
        bodies = [c.read_response().body for _ in requests]
    assert bodies == [b"ab", b"one", b"xyz", b"w", b"Hello, world!\n"]


@pytest.mark.parametrize("kind", ["list", "gen", "write"])
def test_thousands_of_small_items(server, kind):
    # More items than IOV_MAX (1024): a writev/sendmsg of every queued item at once would fail.
    with server.client() as c:
        c.request("GET", "/many_items/?n=5000&size=3&kind=" + kind)
        c.request("GET", "/environ/after")
        resp = c.read_response()
        assert resp.status == 200 and resp.complete
        assert resp.body == b"".join((b"%d" % (i % 10)) * 3 for i in range(5000))
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_many_large_items_through_write(server):
    # PEP 3333: write() returns once the data is sent or buffered; it must not fail because
    # the client has not read yet (the client here waits before reading).
    with server.client() as c:
        c.request("GET", "/many_items/?n=160&size=65536&kind=write")  # 10 MiB through write()
        time.sleep(0.5)
        resp = c.read_response()
    assert len(resp.body) == 160 * 65536
    assert resp.body[-65536:] == b"9" * 65536


def test_large_response_headers(server):
    with server.client() as c:
        c.request("GET", "/big_headers/?n=200&size=1000")  # 200 KB of headers
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"big headers"
        for i in (0, 99, 199):
            assert resp.header("X-Big-%d" % i) == chr(97 + i % 26) * 1000
        c.request("GET", "/hello/")
        assert c.read_response().body == b"Hello, world!\n"
