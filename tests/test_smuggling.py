"""Request smuggling: every ambiguous or malformed framing is refused, never guessed (SPEC 4,
RFC 9112 6.1, 6.3, 7.1, 11.2).

Each payload is sent raw over a socket to a real server process whose app records every call
in a file. Each must be answered 400 or 501, the connection must be closed, and the app must
never be called: neither for the outer request nor for the request hidden inside
("GET /smuggled"). The buffered server is checked for every payload; the streaming server
(which calls the app as soon as the head is complete) for every payload whose head is bad.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from hardening_support import ServerProcess, exchange, statuses  # noqa: E402

HIDDEN = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"


def post(headers, body=b"", version=b"1.1", line_end=b"\r\n"):
    head = b"POST /outer HTTP/" + version + line_end + b"Host: x" + line_end
    for h in headers:
        head += h + line_end
    return head + line_end + body


# (id, payload, bad_head): bad_head is True when the head alone is malformed, so even a
# streaming app must not be called.
CASES = [
    # Content-Length together with Transfer-Encoding, in both orders (RFC 9112 6.3.3)
    ("cl-then-te", post([b"Content-Length: 6", b"Transfer-Encoding: chunked"],
                        b"0\r\n\r\n" + HIDDEN), True),
    ("te-then-cl", post([b"Transfer-Encoding: chunked", b"Content-Length: 40"],
                        b"0\r\n\r\n" + HIDDEN), True),
    # two different Content-Lengths, as two fields and as a list
    ("two-content-lengths", post([b"Content-Length: 0", b"Content-Length: 37"], HIDDEN), True),
    ("content-length-list", post([b"Content-Length: 0, 37"], HIDDEN), True),
    # obfuscated Transfer-Encoding
    ("te-leading-comma", post([b"Transfer-Encoding: ,chunked"], b"0\r\n\r\n" + HIDDEN), True),
    ("te-vertical-tab", post([b"Transfer-Encoding:\x0bchunked"], b"0\r\n\r\n" + HIDDEN), True),
    ("te-form-feed-after", post([b"Transfer-Encoding: chunked\x0c"], b"0\r\n\r\n" + HIDDEN),
     True),
    ("te-nul-inside", post([b"Transfer-Encoding: chun\x00ked"], b"0\r\n\r\n" + HIDDEN), True),
    ("te-chunked-not-last", post([b"Transfer-Encoding: chunked, identity"],
                                 b"0\r\n\r\n" + HIDDEN), True),
    ("te-chunked-twice", post([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                              b"0\r\n\r\n" + HIDDEN), True),
    ("te-split-fields", post([b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked"],
                             b"0\r\n\r\n" + HIDDEN), True),
    ("te-quoted", post([b'Transfer-Encoding: "chunked"'], b"0\r\n\r\n" + HIDDEN), True),
    ("te-on-http10", post([b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + HIDDEN,
                          version=b"1.0"), True),
    ("te-unknown-coding", post([b"Transfer-Encoding: gzip, chunked"],
                               b"0\r\n\r\n" + HIDDEN), True),
    # whitespace between the field name and the colon (RFC 9112 5.1: must be rejected)
    ("space-before-colon-cl", post([b"Content-Length : 37"], HIDDEN), True),
    ("space-before-colon-te", post([b"Transfer-Encoding : chunked"], b"0\r\n\r\n" + HIDDEN),
     True),
    ("tab-before-colon", post([b"Content-Length\t: 37"], HIDDEN), True),
    ("space-before-name", b"POST /outer HTTP/1.1\r\n Content-Length: 37\r\nHost: x\r\n\r\n"
     + HIDDEN, True),
    # bare CR and bare LF line ends (RFC 9112 2.2: a bare CR must be rejected)
    ("bare-cr-request-line", b"POST /outer HTTP/1.1\rContent-Length: 37\r\n\r\n" + HIDDEN,
     True),
    ("bare-cr-header", post([b"X-A: 1\rContent-Length: 37"], HIDDEN), True),
    ("bare-cr-in-value", post([b"X-A: 1\r2", b"Content-Length: 37"], HIDDEN), True),
    ("bare-lf-everywhere", post([b"Content-Length: 37"], HIDDEN, line_end=b"\n"), True),
    ("bare-lf-header", post([b"X-A: 1\nContent-Length: 37"], HIDDEN), True),
    ("bare-lf-chunk-size", post([b"Transfer-Encoding: chunked"],
                                b"3\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("bare-cr-chunk-size", post([b"Transfer-Encoding: chunked"],
                                b"3\rabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("bare-lf-after-chunk-data", post([b"Transfer-Encoding: chunked"],
                                      b"3\r\nabc\n0\r\n\r\n" + HIDDEN), False),
    # obs-fold (RFC 9112 5.2: rejected), including a fold that would hide a Content-Length
    ("obs-fold-space", post([b"X-A: 1", b" folded", b"Content-Length: 37"], HIDDEN), True),
    ("obs-fold-tab", post([b"X-A: 1", b"\tContent-Length: 37"], HIDDEN), True),
    ("obs-fold-te", post([b"Transfer-Encoding: identity", b" chunked"], b"0\r\n\r\n" + HIDDEN),
     True),
    # numbers in forms other than 1*DIGIT / 1*HEXDIG
    ("cl-plus", post([b"Content-Length: +37"], HIDDEN), True),
    ("cl-minus", post([b"Content-Length: -1"], HIDDEN), True),
    ("cl-hex", post([b"Content-Length: 0x25"], HIDDEN), True),
    ("cl-underscore", post([b"Content-Length: 3_7"], HIDDEN), True),
    ("cl-inner-space", post([b"Content-Length: 3 7"], HIDDEN), True),
    ("cl-overflow", post([b"Content-Length: 18446744073709551653"], HIDDEN), True),
    ("chunk-size-plus", post([b"Transfer-Encoding: chunked"], b"+3\r\nabc\r\n0\r\n\r\n" + HIDDEN),
     False),
    ("chunk-size-hex-prefix", post([b"Transfer-Encoding: chunked"],
                                   b"0x3\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-size-underscore", post([b"Transfer-Encoding: chunked"],
                                   b"1_0\r\n0123456789abcdef\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-size-negative", post([b"Transfer-Encoding: chunked"],
                                 b"-3\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-size-space-inside", post([b"Transfer-Encoding: chunked"],
                                     b"1 0\r\n0123456789abcdef\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-size-overflow", post([b"Transfer-Encoding: chunked"],
                                 b"10000000000000003\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    # CR or LF inside a chunk extension
    ("chunk-ext-bare-lf", post([b"Transfer-Encoding: chunked"],
                               b"3;a\nb\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-ext-bare-cr", post([b"Transfer-Encoding: chunked"],
                               b"3;a\rb\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-ext-quoted-crlf", post([b"Transfer-Encoding: chunked"],
                                   b'3;a="x\r\n0\r\n\r\n' + HIDDEN + b'"\r\nabc\r\n0\r\n\r\n'),
     False),
    # a chunked body whose framing CRLFs are missing
    ("missing-final-crlf", post([b"Transfer-Encoding: chunked"], b"0\r\n" + HIDDEN), False),
    ("missing-crlf-after-data", post([b"Transfer-Encoding: chunked"],
                                     b"3\r\nabc0\r\n\r\n" + HIDDEN), False),
    ("chunk-data-longer-than-size", post([b"Transfer-Encoding: chunked"],
                                         b"3\r\nabcdef\r\n0\r\n\r\n" + HIDDEN), False),
    # NUL bytes in header values
    ("nul-in-value", post([b"X-A: a\x00b", b"Content-Length: 37"], HIDDEN), True),
    ("nul-after-content-length", post([b"Content-Length: 37\x00"], HIDDEN), True),
    ("nul-in-name", post([b"X-\x00A: 1", b"Content-Length: 37"], HIDDEN), True),
    # an over-long chunk-size line: leading zeros and extensions that never end
    ("chunk-size-many-zeros", post([b"Transfer-Encoding: chunked"],
                                   b"0" * 70000 + b"3\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
    ("chunk-ext-over-long", post([b"Transfer-Encoding: chunked"],
                                 b"3;" + b"a" * 200000 + b"\r\nabc\r\n0\r\n\r\n" + HIDDEN), False),
]


@pytest.fixture(scope="module", params=["buffered", "streaming"])
def server(request, tmp_path_factory):
    streaming = request.param == "streaming"
    srv = ServerProcess(str(tmp_path_factory.mktemp("smuggling")), stream_input=streaming,
                        header_timeout=5, max_header_size=65536)
    srv.streaming = streaming
    yield srv
    srv.stop()


def test_server_answers_a_normal_request_first(server):
    """The oracle works: a well-formed request with a body reaches the app."""
    body = b"0\r\n\r\n" + HIDDEN
    response, closed = exchange(server.address, post([b"Content-Length: %d" % len(body),
                                                       b"Connection: close"], body))
    assert statuses(response) == [200], response[:200]
    assert closed
    assert server.records()[-1] == "POST /outer %d" % len(body)


@pytest.mark.parametrize("payload,bad_head", [(p, b) for _, p, b in CASES],
                         ids=[name for name, _, _ in CASES])
def test_ambiguous_framing_is_refused_and_nothing_reaches_the_app(server, payload, bad_head):
    before = server.records()
    response, closed = exchange(server.address, payload)
    after = server.records()
    new_calls = after[len(before):]
    assert not any("/smuggled" in call for call in new_calls), \
        "a hidden request was run: %r (answer %r)" % (new_calls, response[:300])
    assert closed, "connection left open after %r" % response[:300]
    if server.streaming and not bad_head:
        # the app was called at the end of the head; it must see a failed body, not a
        # complete one, and nothing after the body may be parsed
        assert not any(call.startswith("POST /outer") for call in new_calls), \
            "the streaming app saw a complete body: %r" % new_calls
        return
    assert new_calls == [], "the app was called: %r (answer %r)" % (new_calls, response[:300])
    codes = statuses(response)
    assert codes and codes[0] in (400, 501), "answer %r" % response[:300]
    assert len(codes) == 1, "more than one answer: %r" % response[:300]
    assert server.alive()
