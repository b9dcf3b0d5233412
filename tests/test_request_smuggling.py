"""Request smuggling: every ambiguous or malformed framing is refused, never guessed (SPEC 4,
RFC 9112 6.1, 6.3, 7.1, 11.2).

Each payload is sent raw to the router, whose apps record every call.  Each must be answered
once, 400 or 501 with ``Connection: close``, the connection must be closed, and no app may be
called: neither for the outer request (``/echo/outer``, which records the body it read) nor
for the request hidden inside (``GET /hello/smuggled``).  The buffered server is checked for
every payload; the streaming one (which calls the app as soon as the head is complete) for
every payload whose head is bad, and for the others, that the app never saw a whole body.
tools/valgrind.sh runs this file with every server under memcheck.
"""

import pytest

from tests.support.server import ROUTER

OUTER = b"/echo/outer?id=outer"
HIDDEN = b"GET /hello/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body=b"", version=b"1.1", line_end=b"\r\n"):
    head = b"POST " + OUTER + b" HTTP/" + version + line_end + b"Host: x" + line_end
    for h in headers:
        head += h + line_end
    return head + line_end + body


def fields_post(*fields):
    """A request with these header ``fields`` (a Content-Length, mostly), HIDDEN its body."""
    return post(list(fields), HIDDEN)


def te_post(*fields, version=b"1.1"):
    """A request with these framing ``fields`` and an empty chunked body, then HIDDEN."""
    return post(list(fields), b"0\r\n\r\n" + HIDDEN, version)


def chunked_post(body):
    """A chunked request whose ``body`` is malformed, then HIDDEN."""
    return post([b"Transfer-Encoding: chunked"], body + HIDDEN)


# (id, payload, bad_head): bad_head is True when the head alone is malformed, so even a
# streaming app must not be called.
CASES = [
    # Content-Length together with Transfer-Encoding, in both orders (RFC 9112 6.3.3)
    ("cl-then-te", te_post(b"Content-Length: 6", b"Transfer-Encoding: chunked"), True),
    ("te-then-cl", te_post(b"Transfer-Encoding: chunked", b"Content-Length: 40"), True),
    # two different Content-Lengths, as two fields and as a list
    ("two-content-lengths", fields_post(b"Content-Length: 0", b"Content-Length: 37"), True),
    ("content-length-list", fields_post(b"Content-Length: 0, 37"), True),
    # obfuscated Transfer-Encoding
    ("te-leading-comma", te_post(b"Transfer-Encoding: ,chunked"), True),
    ("te-vertical-tab", te_post(b"Transfer-Encoding:\x0bchunked"), True),
    ("te-form-feed-after", te_post(b"Transfer-Encoding: chunked\x0c"), True),
    ("te-nul-inside", te_post(b"Transfer-Encoding: chun\x00ked"), True),
    ("te-chunked-not-last", te_post(b"Transfer-Encoding: chunked, identity"), True),
    ("te-chunked-twice", te_post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
     True),
    ("te-split-fields", te_post(b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"),
     True),
    ("te-quoted", te_post(b'Transfer-Encoding: "chunked"'), True),
    ("te-on-http10", te_post(b"Transfer-Encoding: chunked", version=b"1.0"), True),
    ("te-unknown-coding", te_post(b"Transfer-Encoding: gzip, chunked"), True),
    # whitespace between the field name and the colon (RFC 9112 5.1: must be rejected)
    ("space-before-colon-cl", fields_post(b"Content-Length : 37"), True),
    ("space-before-colon-te", te_post(b"Transfer-Encoding : chunked"), True),
    ("tab-before-colon", fields_post(b"Content-Length\t: 37"), True),
    ("space-before-name",
     b"POST " + OUTER + b" HTTP/1.1\r\n Content-Length: 37\r\nHost: x\r\n\r\n" + HIDDEN, True),
    # bare CR and bare LF line ends (RFC 9112 2.2: a bare CR must be rejected)
    ("bare-cr-request-line",
     b"POST " + OUTER + b" HTTP/1.1\rContent-Length: 37\r\n\r\n" + HIDDEN, True),
    ("bare-cr-header", fields_post(b"X-A: 1\rContent-Length: 37"), True),
    ("bare-cr-in-value", fields_post(b"X-A: 1\r2", b"Content-Length: 37"), True),
    ("bare-lf-everywhere", post([b"Content-Length: 37"], HIDDEN, line_end=b"\n"), True),
    ("bare-lf-header", fields_post(b"X-A: 1\nContent-Length: 37"), True),
    ("bare-lf-chunk-size", chunked_post(b"3\nabc\r\n0\r\n\r\n"), False),
    ("bare-cr-chunk-size", chunked_post(b"3\rabc\r\n0\r\n\r\n"), False),
    ("bare-lf-after-chunk-data", chunked_post(b"3\r\nabc\n0\r\n\r\n"), False),
    # obs-fold (RFC 9112 5.2: rejected), including a fold that would hide a Content-Length
    ("obs-fold-space", fields_post(b"X-A: 1", b" folded", b"Content-Length: 37"), True),
    ("obs-fold-tab", fields_post(b"X-A: 1", b"\tContent-Length: 37"), True),
    ("obs-fold-te", te_post(b"Transfer-Encoding: identity", b" chunked"), True),
    # numbers in forms other than 1*DIGIT / 1*HEXDIG
    ("cl-plus", fields_post(b"Content-Length: +37"), True),
    ("cl-minus", fields_post(b"Content-Length: -1"), True),
    ("cl-hex", fields_post(b"Content-Length: 0x25"), True),
    ("cl-underscore", fields_post(b"Content-Length: 3_7"), True),
    ("cl-inner-space", fields_post(b"Content-Length: 3 7"), True),
    ("cl-overflow", fields_post(b"Content-Length: 18446744073709551653"), True),
    ("chunk-size-plus", chunked_post(b"+3\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-size-hex-prefix", chunked_post(b"0x3\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-size-underscore", chunked_post(b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n"), False),
    ("chunk-size-negative", chunked_post(b"-3\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-size-space-inside", chunked_post(b"1 0\r\n0123456789abcdef\r\n0\r\n\r\n"), False),
    ("chunk-size-overflow", chunked_post(b"10000000000000003\r\nabc\r\n0\r\n\r\n"), False),
    # CR or LF inside a chunk extension
    ("chunk-ext-bare-lf", chunked_post(b"3;a\nb\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-ext-bare-cr", chunked_post(b"3;a\rb\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-ext-quoted-crlf", post([b"Transfer-Encoding: chunked"],
                                   b'3;a="x\r\n0\r\n\r\n' + HIDDEN + b'"\r\nabc\r\n0\r\n\r\n'),
     False),
    # a chunked body whose framing CRLFs are missing
    ("missing-final-crlf", chunked_post(b"0\r\n"), False),
    ("missing-crlf-after-data", chunked_post(b"3\r\nabc0\r\n\r\n"), False),
    ("chunk-data-longer-than-size", chunked_post(b"3\r\nabcdef\r\n0\r\n\r\n"), False),
    # NUL bytes in header values
    ("nul-in-value", fields_post(b"X-A: a\x00b", b"Content-Length: 37"), True),
    ("nul-after-content-length", fields_post(b"Content-Length: 37\x00"), True),
    ("nul-in-name", fields_post(b"X-\x00A: 1", b"Content-Length: 37"), True),
    # an over-long chunk-size line: leading zeros and extensions that never end
    ("chunk-size-many-zeros", chunked_post(b"0" * 70000 + b"3\r\nabc\r\n0\r\n\r\n"), False),
    ("chunk-ext-over-long", chunked_post(b"3;" + b"a" * 200000 + b"\r\nabc\r\n0\r\n\r\n"),
     False),
]


@pytest.fixture(params=["buffered", "streaming"])
def target(request, shared_server):
    srv = shared_server(ROUTER, stream_input=request.param == "streaming", header_timeout=5,
                        max_header_size=65536)
    srv.streaming = request.param == "streaming"
    return srv


def exchange(srv, payload):
    """Send ``payload``; returns (the client, whether the server closed the connection, the
    app calls meanwhile, how many whole bodies the outer app read meanwhile)."""
    calls, reads = len(srv.events("router")), srv.count_events("outer", "call")
    with srv.client() as c:
        c.send(payload, may_be_cut=True)
        closed = c.peer_closed(2)  # the answer and the close come at once: 2 s is plenty
    return c, closed, srv.events("router")[calls:], srv.count_events("outer", "call") - reads


def test_server_answers_a_normal_request_first(target):
    """The oracle works: a well-formed request with a body reaches the app."""
    body = b"0\r\n\r\n" + HIDDEN
    c, closed, calls, reads = exchange(target, post([b"Content-Length: %d" % len(body),
                                                     b"Connection: close"], body))
    assert c.read_response().status == 200 and not c.buf
    assert closed
    assert calls == [["call", OUTER.decode()]] and reads == 1


@pytest.mark.parametrize("name,payload,bad_head", CASES, ids=[name for name, _, _ in CASES])
def test_ambiguous_framing_is_refused_and_nothing_reaches_the_app(target, name, payload,
                                                                  bad_head):
    c, closed, calls, reads = exchange(target, payload)
    answer = bytes(c.buf[:300])
    assert not any("/smuggled" in call[-1] for call in calls), \
        "a hidden request was run: %r (answer %r)" % (calls, answer)
    assert closed, "connection left open after %r" % answer
    if target.streaming and not bad_head:
        # the app was called at the end of the head; it must see a failed body, not a
        # complete one, and nothing after the body may be parsed
        assert reads == 0, "the streaming app read a whole body (answer %r)" % answer
        return
    assert calls == [], "the app was called: %r (answer %r)" % (calls, answer)
    resp = c.read_response()
    # a transfer coding the server does not know may be 501 (RFC 9112 section 6.1)
    assert resp.status in ((400, 501) if name.startswith("te-") else (400,)), answer
    assert "close" in resp.connection_tokens(), answer
    assert not c.buf, "more than one answer: %r" % answer
    target.check_alive()
