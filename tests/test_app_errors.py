"""App errors (SPEC section 4): before the headers a 500 and a logged traceback, after them a
cut connection the client can tell from a complete one; an invalid status, header or item is an
app error too; the server keeps serving."""

from urllib.parse import quote

import pytest

from tests.support.server import assert_still_serving, unique_id
from tests.support.waits import wait_for


def app_error_500(srv, target):
    """GET ``target``: expect a 500, a new line in the error log, and a server still serving."""
    before = len(srv.stderr())
    resp = srv.get(target)
    assert resp.status == 500, resp
    assert wait_for(lambda: len(srv.stderr()) > before), "the app error was not logged"
    assert_still_serving(srv)
    return resp


def test_exception_before_headers_gives_500_and_a_logged_traceback(server):
    ident = unique_id()
    resp = server.get("/raise_before_headers/?id=" + ident)
    assert resp.status == 500 and resp.complete
    assert ident.encode() not in resp.body  # no exception details leak to the client
    stderr = server.wait_stderr("boom-before-headers " + ident)
    assert stderr is not None, server.stderr()[-3000:]
    tail = stderr[stderr.rfind("Traceback", 0, stderr.find(ident)):]
    assert tail.startswith("Traceback (most recent call last):"), stderr[-3000:]
    assert "raise_before_headers" in tail  # the frame of the app is in the traceback
    assert_still_serving(server)


@pytest.mark.parametrize("target", ["/raise_after_start/", "/no_start_response/",
                                    "/returns_none/"])
def test_app_misuse_before_the_body_gives_500(server, target):
    ident = unique_id()
    assert server.get(target + "?id=" + ident).status == 500
    if target == "/raise_after_start/":  # the traceback names the exception
        assert server.wait_stderr("boom-after-start " + ident) is not None
    assert_still_serving(server)


def test_keep_alive_connection_survives_a_500(server):
    with server.client() as c:
        c.request("GET", "/raise_before_headers/")
        assert c.read_response().status == 500
        if not c.peer_closed(0.3):  # closing after a 500 is allowed; if kept, it must work
            c.request("GET", "/environ/after")
            assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_exception_in_the_generator_after_headers_cuts_the_connection(server):
    ident = unique_id()
    with server.client() as c:
        c.request("GET", "/raise_in_generator/?id=" + ident)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.framing == "chunked"
        assert resp.body == b"partial body;" * 100
        assert not resp.complete  # no last chunk: the client can tell it was truncated
        assert c.eof
    assert server.wait_stderr("boom-in-generator " + ident) is not None
    assert_still_serving(server)


def test_exception_in_the_generator_on_http10_cuts_the_connection(server):
    with server.client() as c:
        c.request("GET", "/raise_in_generator/", version="HTTP/1.0")
        resp = c.read_response()
        assert resp.status == 200 and resp.framing == "close"
    assert_still_serving(server)


def test_exception_in_the_generator_with_content_length_cuts_the_connection(server):
    with server.client() as c:
        c.request("GET", "/scripted/?kind=gen&part=abc&part=def&cl=6&status=" + quote("200 OK"))
        assert c.read_response().complete  # control: the scripted app with a length works
        c.request("GET", "/closing/?mode=raise")
        resp = c.read_response()
        assert resp.status == 200 and not resp.complete
        assert c.eof
    assert_still_serving(server)


@pytest.mark.parametrize("case", ["str_item", "int_item", "bytes_status", "int_header_value",
                                  "bytes_header_name", "header_not_tuple", "headers_not_list",
                                  "non_latin1_header_value", "non_latin1_status", "write_str",
                                  "returns_str"])
def test_invalid_response_from_the_app_gives_500(server, case):
    before = len(server.stderr())
    resp = server.get("/bad_response/?case=" + case)
    if case == "int_item" and resp.status == 200:
        # b"ok" may already be on its way when the int shows up: then the response is cut.
        assert not resp.complete
    else:
        assert resp.status == 500, resp
        assert b"should not be sent" not in resp.body
    assert wait_for(lambda: len(server.stderr()) > before), "the app error was not logged"
    assert_still_serving(server)


@pytest.mark.parametrize("status", ["abc", "2000 OK", "20 OK", "200OK", "200 OK\r\nX-Injected: 1",
                                    "200 OK\n", "999 Too Big\x00"])
def test_bad_status_gives_500(server, status):
    resp = app_error_500(server, "/scripted/?status=" + quote(status, safe=""))
    assert not resp.has_header("X-Injected")


@pytest.mark.parametrize("name,value", [
    ("X-Injected", "v\r\nSet-Cookie: evil=1"),
    ("X-Lf", "v\nSet-Cookie: evil=1"),
    ("X-Cr", "v\rSet-Cookie: evil=1"),
    ("X-Nul", "v\x00w"),
    ("X-Bad Name", "v"),
    ("", "empty name"),
    ("X-Name\r\nSet-Cookie", "evil=1"),
])
def test_bad_header_from_the_app_gives_500(server, name, value):
    resp = app_error_500(server, "/scripted/?h=" + quote("%s:%s" % (name, value), safe=""))
    assert not resp.has_header("Set-Cookie")


# wsgiref.util.is_hop_by_hop's list (RFC 2616 section 13.5.1, "Trailers" spelt as there), less
# Connection.  "Trailer" (RFC 9110's end-to-end field) is not in it.
@pytest.mark.parametrize("name", ["Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
                                  "TE", "Trailers", "Transfer-Encoding", "Upgrade"])
def test_hop_by_hop_header_from_the_app_gives_500(server, name):
    app_error_500(server, "/scripted/?h=" + quote("%s:chunked" % name, safe=""))


def test_connection_header_from_the_app_is_allowed(server):
    with server.client() as c:
        c.request("GET", "/scripted/?part=bye&h=" + quote("Connection:close", safe=""))
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"bye"
        assert resp.header_list("Connection") == ["close"]
        assert c.peer_closed(5)  # and the server honours it


def test_latin1_header_value_from_the_app_is_sent_as_its_bytes(server):
    value = quote("caf\xe9 \xff", safe="", encoding="latin-1")
    with server.client() as c:
        c.request("GET", "/scripted/?h=" + quote("X-Latin:", safe="") + value)
        resp = c.read_response()
    assert resp.status == 200
    assert b"\r\nX-Latin: caf\xe9 \xff\r\n" in resp.raw_head


def test_exception_in_close_is_logged_and_the_response_stands(server):
    ident = unique_id()
    with server.client() as c:
        c.request("GET", "/closing/?mode=close_raises&id=" + ident)
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"item1;item2;" and resp.complete
    assert server.wait_stderr("close-raised " + ident) is not None
    assert server.count_events(ident, "close") == 1
    assert_still_serving(server)
