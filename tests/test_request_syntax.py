"""The request syntax of RFC 9112 and RFC 9110 as SPEC section 4 holds it (issue 14): what the
server refuses itself (the status, ``Connection: close``, a closed connection, the app never
called) and the valid forms it must accept, each sent three ways: in one write, one byte per
write (the parser is fed piece by piece), and pipelined behind a good request on the same
connection.

tests/test_parser_agrees_with_h11.py checks the same rules over generated requests against a
reference parser.
"""

import pytest

from tests.support.client import build_request, chunked

DELIVERIES = ["whole", "bytewise", "pipelined"]
ENVIRON = "tests.support.apps:environ_json"
GOOD = b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n"


def app_calls(srv):
    return len(srv.events("router"))


def exchange(srv, raw, delivery):
    """Send ``raw`` as ``delivery`` says; returns the response to ``raw`` and the client (the
    caller closes it)."""
    c = srv.client()
    try:
        if delivery == "pipelined":
            c.send(GOOD + raw)
            first = c.read_response()
            assert first.status == 200 and first.body == b"Hello, world!\n", first
        elif delivery == "bytewise":
            c.send_slowly(raw, step=1, delay=0)
        else:
            c.send(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the answer came before the last bytes: it is read below
    return c.read_response(), c


def assert_refused(srv, raw, status, delivery="whole"):
    calls = app_calls(srv) + (1 if delivery == "pipelined" else 0)
    resp, c = exchange(srv, raw, delivery)
    with c:
        assert resp.status == status, (resp, raw)
        assert "close" in resp.connection_tokens(), resp
        assert c.peer_closed(5), "connection left open after %d" % status
    assert app_calls(srv) == calls, "the app was called for a refused request: %r" % raw


def served(srv, raw, delivery="whole"):
    """The app's response to ``raw``, which the server must accept."""
    resp, c = exchange(srv, raw, delivery)
    c.close()
    assert resp.status < 300, (resp, raw)
    return resp


def post_chunked(body, target="/echo/"):
    return build_request("POST", target, [("Transfer-Encoding", "chunked")]) + body


# ---- line ends: CRLF and nothing else (RFC 9112 2.2, SPEC 4) ---------------------------------

BARE_LINE_ENDS = {
    "request-line-lf": b"GET /hello/ HTTP/1.1\nHost: x\r\n\r\n",
    "request-line-cr": b"GET /hello/ HTTP/1.1\rHost: x\r\n\r\n",
    "field-line-lf": b"GET /hello/ HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n",
    "field-line-cr": b"GET /hello/ HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n",
    "head-end-lf": b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\n",
    "head-end-cr": b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\r\n",
    "leading-empty-line-lf": b"\nGET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "leading-empty-line-cr": b"\rGET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "chunk-size-lf": post_chunked(b"5\nhello\r\n0\r\n\r\n"),
    "chunk-size-cr": post_chunked(b"5\rhello\r\n0\r\n\r\n"),
    "chunk-extension-lf": post_chunked(b"5;a=b\nhello\r\n0\r\n\r\n"),
    "chunk-data-lf": post_chunked(b"5\r\nhello\n0\r\n\r\n"),
    "chunk-data-cr": post_chunked(b"5\r\nhello\r0\r\n\r\n"),
    "last-chunk-lf": post_chunked(b"5\r\nhello\r\n0\n\r\n"),
    "trailer-lf": post_chunked(b"5\r\nhello\r\n0\r\nX-T: 1\n\r\n"),
    "trailer-cr": post_chunked(b"5\r\nhello\r\n0\r\nX-T: 1\rX-U: 2\r\n\r\n"),
    "trailers-end-lf": post_chunked(b"5\r\nhello\r\n0\r\nX-T: 1\r\n\n"),
    "body-end-lf": post_chunked(b"5\r\nhello\r\n0\r\n\n"),
}


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("name", sorted(BARE_LINE_ENDS))
def test_a_bare_cr_or_lf_where_a_line_ends_gets_400(server, name, delivery):
    assert_refused(server, BARE_LINE_ENDS[name], 400, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_empty_lines_before_a_request_line_are_ignored(server, delivery):
    # RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line
    resp = served(server, b"\r\n\r\n" + GOOD, delivery)
    assert resp.body == b"Hello, world!\n"


def test_an_empty_line_after_a_body_is_ignored_before_the_next_request(server):
    body = b"abc"
    raw = build_request("POST", "/echo/", [("Content-Length", "3")], body) + b"\r\n" + GOOD
    with server.client() as c:
        c.send(raw)
        assert c.read_response().json()["body"] == "abc"
        assert c.read_response().body == b"Hello, world!\n"


# ---- whitespace around values (RFC 9112 5: OWS is SP or HTAB, on both sides) ------------------

@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("ows", [" ", "\t", " \t ", "\t\t"], ids=repr)
def test_framing_fields_with_trailing_whitespace_frame_the_body(server, ows, delivery):
    # the next request follows the body: a body not framed as sent would run into it
    length = build_request("POST", "/echo/", [("Content-Length", "5" + ows)]) + b"hello"
    chunks = (build_request("POST", "/echo/", [("Transfer-Encoding", ows + "chunked" + ows)])
              + chunked(b"hel", b"lo"))
    for raw in (length, chunks):
        resp, c = exchange(server, raw + GOOD, delivery)
        with c:
            assert resp.status == 200 and resp.json()["body"] == "hello", (resp, raw)
            assert c.read_response().body == b"Hello, world!\n"


# ---- fields that must come once (RFC 9112 3.2, RFC 9110 5.3, SPEC 4) -------------------------

REPEATED = {
    "two-hosts": [("Host", "a"), ("Host", "b")],
    "two-equal-hosts": [("Host", "a"), ("host", "a")],
    "two-content-types": [("Host", "a"), ("Content-Type", "text/plain"),
                          ("Content-Type", "text/html")],
    "two-equal-content-types": [("Host", "a"), ("Content-Type", "text/plain"),
                                ("content-type", "text/plain")],
}


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("name", sorted(REPEATED))
def test_a_repeated_host_or_content_type_gets_400(server, name, delivery):
    assert_refused(server, build_request("GET", "/hello/", REPEATED[name]), 400, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_an_http11_request_without_host_gets_400(server, delivery):
    assert_refused(server, b"GET /hello/ HTTP/1.1\r\nX-A: 1\r\n\r\n", 400, delivery)


@pytest.mark.parametrize("value", ["a b", "a@b", "[::1", "[::g]", "x:8o", "x:80:80", "a/b",
                                   "caf\xe9", "%zz"])
def test_a_host_that_is_not_uri_host_and_port_gets_400(server, value):
    # RFC 9112 3.2: a Host field with an invalid value MUST get 400
    assert_refused(server, build_request("GET", "/hello/", [("Host", value)]), 400)


@pytest.mark.parametrize("value", ["", "example.com", "example.com:8080", "127.0.0.1:1",
                                   "[::1]", "[::ffff:1.2.3.4]:80", "[v7.a:b]", "a%41b", "x:",
                                   "xn--bcher-kva.example", "a!$&'()*+;=-._~b"])
def test_a_valid_host_is_accepted(server, value):
    resp = served(server, build_request("GET", "/environ/", [("Host", value)]))
    assert resp.json()["HTTP_HOST"] == value


# ---- request targets (RFC 9112 3.2, RFC 9110 4.2) --------------------------------------------

BAD_TARGETS = {
    "absolute-bad-host": ("PUT", "s://]ufd/:"),
    "absolute-userinfo": ("GET", "http://user@example.com/environ/"),
    "absolute-no-authority": ("GET", "http:/environ/"),
    "absolute-empty-host": ("GET", "http:///environ/"),
    "absolute-empty-host-port": ("GET", "http://:80/environ/"),
    "absolute-bad-port": ("GET", "http://example.com:8o/environ/"),
    "absolute-bad-scheme": ("GET", "1http://example.com/environ/"),
    "absolute-bad-ipv6": ("GET", "http://[::1/environ/"),
    "absolute-bad-percent": ("GET", "http://ex%zzample.com/"),
    "not-a-target": ("GET", "environ"),
    "urn": ("GET", "urn:example:x"),
    "asterisk-get": ("GET", "*"),
    "asterisk-post": ("POST", "*"),
    "asterisk-connect": ("CONNECT", "*"),
    "asterisk-and-more": ("OPTIONS", "*x"),
    "connect-origin-form": ("CONNECT", "/environ/"),
    "connect-without-port": ("CONNECT", "example.com"),
    "connect-empty-port": ("CONNECT", "example.com:"),
    "connect-userinfo": ("CONNECT", "u@example.com:443"),
}


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("name", sorted(BAD_TARGETS))
def test_an_invalid_request_target_gets_400(server, name, delivery):
    method, target = BAD_TARGETS[name]
    assert_refused(server, build_request(method, target), 400, delivery)


@pytest.mark.parametrize("delivery", DELIVERIES)
def test_absolute_form_gives_path_query_and_the_targets_authority_as_host(server, delivery):
    # RFC 9112 3.2.2: the Host field is replaced by the target's authority
    target = "http://Example.COM:8080/environ/a%20b?x=1&y=2"
    env = served(server, build_request("GET", target, [("Host", "other.example")]),
                 delivery).json()
    assert env["PATH_INFO"] == "/environ/a b"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["RAW_URI"] == target
    assert env["HTTP_HOST"] == "Example.COM:8080"
    assert env["SERVER_NAME"] == server.host  # the listener's name, as for any request


@pytest.mark.parametrize("target,path,query,host", [
    ("https://[::1]:8443/environ/x", "/environ/x", "", "[::1]:8443"),
    ("HTTP://h/environ/?", "/environ/", "", "h"),
    ("http://h:/environ/#frag", "/environ/", "", "h:"),
    ("a1+b-c.d://h%41/environ/x?y", "/environ/x", "y", "h%41"),  # llhttp refuses such schemes
])
def test_absolute_form_variants(server, target, path, query, host):
    env = served(server, build_request("GET", target)).json()
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["HTTP_HOST"]) == (path, query, host)


@pytest.mark.parametrize("method,target,path", [("GET", "http://example.com", "/"),
                                                ("GET", "http://example.com?q=1", "/"),
                                                ("OPTIONS", "http://example.com", "*"),
                                                ("OPTIONS", "*", "*")])
def test_an_empty_absolute_path_is_the_root_or_for_options_the_asterisk(shared_server, method,
                                                                         target, path):
    # RFC 9112 3.2.1 ("/" when the path is empty) and 3.2.4 (OPTIONS: the server as a whole)
    srv = shared_server(ENVIRON)
    env = served(srv, build_request(method, target)).json()
    assert env["PATH_INFO"] == path
    assert env["HTTP_HOST"] == ("example.com" if target != "*" else "localhost")


def test_an_absolute_form_request_still_needs_its_host_field(server):
    # RFC 9112 3.2.2: a client MUST send Host even with the absolute form
    raw = b"GET http://example.com/hello/ HTTP/1.1\r\n\r\n"
    assert_refused(server, raw, 400)


def test_connect_with_authority_form_reaches_the_app(shared_server):
    srv = shared_server(ENVIRON)
    with srv.client() as c:
        c.send(build_request("CONNECT", "example.com:443", [("Host", "example.com:443")]))
        env = c.read_response().json()
    assert env["REQUEST_METHOD"] == "CONNECT"
    assert env["RAW_URI"] == "example.com:443"


# ---- chunk extensions (RFC 9112 7.1.1) --------------------------------------------------------

GOOD_EXTENSIONS = [b";name", b";name=token", b';name="quoted"', b';n="q \\" \\\\ \t x"',
                   b"; some; parameters=stuff", b" ;a", b"\t; a = b", b";a=b;c;d=\"e\"",
                   b";a=\"\"", b";!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~", b';a="caf\xe9"',
                   b";" + b"x" * 3000]
BAD_EXTENSIONS = [b";", b";;a", b";=v", b";a=", b";a= ", b";a=\"open", b";a=b c", b';a="x"y',
                  b" ", b";a ", b";a=b ", b"\t", b";a=\"\x01\"", b";a=b\x7f", b";a@b",
                  b";a=\"\\\x00\"", b";a=\"x\x00\"", b";a:b", b";a=b,c", b";" + b"x" * 5000]


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("ext", GOOD_EXTENSIONS, ids=repr)
def test_every_valid_chunk_extension_form_is_accepted(server, ext, delivery):
    body = b"5" + ext + b"\r\nhello\r\n3" + ext + b"\r\nabc\r\n0" + ext + b"\r\n\r\n"
    resp = served(server, post_chunked(body), delivery)
    assert resp.json()["body"] == "helloabc"


@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("ext", BAD_EXTENSIONS, ids=repr)
def test_an_invalid_chunk_extension_gets_400(server, ext, delivery):
    body = b"5" + ext + b"\r\nhello\r\n0\r\n\r\n"
    assert_refused(server, post_chunked(body), 400, delivery)


def test_an_invalid_extension_on_the_last_chunk_gets_400(server):
    assert_refused(server, post_chunked(b"5\r\nhello\r\n0;=\r\n\r\n"), 400)


@pytest.mark.parametrize("trailer", [b"X T: 1", b"X-T : 1", b" X-T: 1", b"X-T: a\x01b",
                                     b"X-T: a\x00b", b": v", b"X-T"])
def test_a_malformed_trailer_field_gets_400(server, trailer):
    assert_refused(server, post_chunked(b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n\r\n"), 400)


def test_valid_trailer_fields_are_accepted(server):
    body = chunked(b"hello", trailers=[("X-T", "1"), ("X-Empty", ""), ("X-Obs", "caf\xe9")])
    assert served(server, post_chunked(body), "bytewise").json()["body"] == "hello"


# ---- methods (RFC 9110 9.1) ---------------------------------------------------------------------

@pytest.mark.parametrize("delivery", DELIVERIES)
@pytest.mark.parametrize("method", ["FOO", "get", "DESCRIBE", "GETX", "GE", "X-!#$%&'*+.^_`|~1"])
def test_a_method_token_the_server_does_not_know_gets_501(server, method, delivery):
    assert_refused(server, build_request(method, "/hello/"), 501, delivery)


@pytest.mark.parametrize("raw", [
    b"G(T /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G\x01T /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET\x00 /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"G\xc9T /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET\t/hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b" GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_a_malformed_method_gets_400(server, raw):
    assert_refused(server, raw, 400)


@pytest.mark.parametrize("raw", [
    b"FOO /hello/ HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
    b"FOO /hello/ HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"FOO /hello/ HTTP/1.1\nHost: x\r\n\r\n",
    b"FOO * HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_an_unknown_method_in_a_malformed_request_gets_400(server, raw):
    assert_refused(server, raw, 400)


# ---- versions (RFC 9110 2.5, 6.2) ---------------------------------------------------------------

@pytest.mark.parametrize("delivery", DELIVERIES)
def test_a_higher_http1_minor_version_is_served_as_http11(server, delivery):
    # RFC 9110 2.5: process it as the highest minor version of that major the server speaks
    resp = served(server, b"GET /environ/ HTTP/1.7\r\nHost: x\r\n\r\n", delivery)
    assert resp.version == "HTTP/1.1"
    assert resp.json()["SERVER_PROTOCOL"] == "HTTP/1.1"


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1"])
def test_another_major_version_gets_505(server, version):
    assert_refused(server, b"GET /hello/ %s\r\nHost: x\r\n\r\n" % version.encode(), 505)


@pytest.mark.parametrize("raw", [b"GET /hello/ HTTP/1.1 \r\nHost: x\r\n\r\n",
                                 b"GET /hello/ HTTP/1.10\r\nHost: x\r\n\r\n",
                                 b"GET /hello/ http/1.1\r\nHost: x\r\n\r\n",
                                 b"GET /hello/ HTTP/1\r\nHost: x\r\n\r\n",
                                 b"GET  /hello/ HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"GET /hello/  HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"GET /hello/\r\nHost: x\r\n\r\n"])
def test_a_malformed_request_line_gets_400(server, raw):
    assert_refused(server, raw, 400)
