"""Request bodies (SPEC section 4), read in full before the app is called: Content-Length,
chunked with extensions and trailers, Expect: 100-continue, spooling to a temporary file, the
wsgi.input methods, and bodies the app leaves unread or the client abandons."""

import hashlib
import json
import os
import subprocess

import pytest

from tests.support.client import build_request, chunked

LINES = b"first line\nsecond\n\nfourth line is longer\nno newline at the end"


def test_content_length_body_reaches_the_app(server):
    body = bytes(range(256)) * 40
    resp = server.get("/echo/", method="POST", body=body)
    data = resp.json()
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["content_length"] == str(len(body))
    assert data["input_terminated"] is True


def test_zero_content_length_body(server):
    resp = server.get("/echo/", method="POST", headers=[("Content-Length", "0")])
    data = resp.json()
    assert data["length"] == 0 and data["content_length"] == "0"


def test_chunked_body_with_trailers(server):
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked"),
                                                 ("Trailer", "X-Checksum")],
                             chunked(b"Wiki", b"pedia", b" in\r\n\r\nchunks.",
                                     trailers=[("X-Checksum", "abc")])))
        data = c.read_response().json()
        assert data["body"] == "Wikipedia in\r\n\r\nchunks."
        # PEP 3333 / SPEC: CONTENT_LENGTH is set once the body has been de-chunked.
        assert data["content_length"] == str(len("Wikipedia in\r\n\r\nchunks."))
        assert data["input_terminated"] is True
        c.request("GET", "/environ/after")  # the trailers were consumed, not left as a request
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_chunked_body_with_chunk_extensions(server):
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                             chunked(b"abc", b"defg", extension=b";name=value")))
        assert c.read_response().json()["body"] == "abcdefg"


def test_empty_chunked_body(server):
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")], chunked()))
        data = c.read_response().json()
        assert data["length"] == 0 and data["content_length"] == "0"


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    body = b"sent only after 100 Continue"
    with server.client() as c:
        c.request("POST", "/echo/", [("Expect", "100-continue")], content_length=len(body))
        interim = c.read_head()  # blocks (bounded by the socket timeout) until it comes
        assert interim.status == 100, interim
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n")
        assert not c.buf  # nothing more until the body is sent
        c.send(body)
        resp = c.read_response()
        assert resp.status == 200 and resp.json()["body"] == body.decode()
        # A second request on the same connection, chunked this time.
        c.send(build_request("POST", "/echo/", [("Expect", "100-continue"),
                                                 ("Transfer-Encoding", "chunked")]))
        assert c.read_head().status == 100
        c.send(chunked(b"second ", b"body"))
        assert c.read_response().json()["body"] == "second body"


def test_expect_100_continue_with_body_sent_at_once(server):
    # A client may not wait for the interim response (RFC 9110 section 10.1.1).
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Expect", "100-continue"),
                                                 ("Content-Length", "4")], b"data"))
        resp = c.read_response()
        assert resp.status == 200 and resp.json()["body"] == "data"
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_expect_100_continue_is_not_sent_for_http10(server):
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Expect", "100-continue"),
                                                 ("Content-Length", "2")], b"ok",
                             version="HTTP/1.0"))
        resp = c.read_response(interim=True)
        assert resp.status == 200, resp


def test_large_upload_is_spooled_to_a_real_file(server):
    body = os.urandom(10 * 1024 * 1024)
    with server.client() as c:
        c.request("POST", "/echo/", body=body)
        data = c.read_response().json()
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["input_is_file"] is True, data  # fileno() of a regular file


def test_large_chunked_upload_is_spooled_to_a_real_file(server):
    parts = [os.urandom(65536) for _ in range(48)]  # 3 MiB, above the 1 MiB default
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                             chunked(*parts)))
        data = c.read_response().json()
    assert data["length"] == 48 * 65536
    assert data["content_length"] == str(48 * 65536)
    assert data["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert data["input_is_file"] is True


def test_small_upload_is_not_spooled(server):
    data = server.get("/echo/", method="POST", body=b"small").json()
    assert data["input_is_file"] is False


def test_upload_with_curl_uses_expect_and_chunked(server, tmp_path):
    payload = os.urandom(2 * 1024 * 1024)
    path = tmp_path / "upload.bin"
    path.write_bytes(payload)
    out = subprocess.run(["curl", "-sS", "--max-time", "30", "-H", "Transfer-Encoding: chunked",
                          "-H", "Expect: 100-continue", "--data-binary", "@%s" % path,
                          server.url("/echo/")],
                         capture_output=True, timeout=60, check=True)
    data = json.loads(out.stdout)
    assert data["length"] == len(payload)
    assert data["sha256"] == hashlib.sha256(payload).hexdigest()


OPS_CASES = [
    ("read", [LINES.decode()]),
    ("read:5,read:6,read:0,read", ["first", " line\n", "", LINES[11:].decode()]),
    ("readline,readline,readline,readline,readline,readline",
     ["first line\n", "second\n", "\n", "fourth line is longer\n", "no newline at the end", ""]),
    ("readline:5,readline:100,readline:3", ["first", " line\n", "sec"]),
    ("readlines", [[line.decode() for line in LINES.splitlines(True)]]),
    ("read:11,readlines", ["first line\n", [line.decode() for line in
                                             LINES[11:].splitlines(True)]]),
    ("iter", [[line.decode() for line in LINES.splitlines(True)]]),
    ("read,read,read:10,readline", [LINES.decode(), "", "", ""]),
    ("read:6,seek:0,read:5", ["first ", None, "first"]),
    ("readline:-1,read:-1", ["first line\n", LINES[11:].decode()]),
]


@pytest.mark.parametrize("ops,expected", OPS_CASES, ids=[c[0] for c in OPS_CASES])
@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spooled"])
def test_wsgi_input_methods(shared_server, ops, expected, spooled):
    # spool_threshold=16: the bodies go to a temporary file
    srv = shared_server("tests.support.apps:input_ops", spool_threshold=16 if spooled else None)
    with srv.client() as c:
        for framing in ("length", "chunked"):
            if framing == "length":
                c.request("POST", "/?ops=" + ops, body=LINES)
            else:
                c.send(build_request("POST", "/?ops=" + ops, [("Transfer-Encoding", "chunked")],
                                     chunked(LINES[:7], LINES[7:30], LINES[30:])))
            resp = c.read_response()
            assert resp.status == 200, (resp, srv.stderr()[-2000:])
            data = resp.json()
            assert data["results"] == expected, framing
            assert data["input_is_file"] is spooled


def test_body_the_app_did_not_read_does_not_become_a_request(server):
    smuggled = build_request("GET", "/environ/smuggled")
    with server.client() as c:
        c.request("POST", "/ignore_body/", body=smuggled)
        c.request("GET", "/environ/real")
        assert c.read_response().body == b"ignored"
        assert c.read_response().json()["PATH_INFO"] == "/environ/real"
        assert c.nothing_received(0.3)


def test_unread_chunked_body_does_not_become_a_request(server):
    smuggled = build_request("GET", "/environ/smuggled")
    with server.client() as c:
        c.send(build_request("POST", "/ignore_body/", [("Transfer-Encoding", "chunked")],
                             chunked(smuggled)))
        c.request("GET", "/environ/real")
        assert c.read_response().body == b"ignored"
        assert c.read_response().json()["PATH_INFO"] == "/environ/real"


def test_body_sent_slowly_in_pieces(server):
    body = b"0123456789" * 1000
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Content-Length", str(len(body)))]))
        c.send_slowly(body, step=997, delay=0.005)
        data = c.read_response().json()
    assert data["length"] == len(body) and data["body"] == body.decode()


def test_large_body_then_a_pipelined_request_in_one_write(server):
    body = os.urandom(3 * 1024 * 1024)
    with server.client() as c:
        c.send(build_request("POST", "/echo/", [("Content-Length", str(len(body)))], body)
               + build_request("GET", "/environ/after"))
        assert c.read_response().json()["sha256"] == hashlib.sha256(body).hexdigest()
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_expect_100_continue_value_is_case_insensitive(server):
    with server.client() as c:
        c.request("POST", "/echo/", [("Expect", "100-Continue")], content_length=2)
        assert c.read_head().status == 100
        c.send(b"ok")
        assert c.read_response().json()["body"] == "ok"


def test_client_that_resets_mid_request_body_does_not_reach_the_app(server):
    calls = len(server.events("router"))
    c = server.client()
    c.send(build_request("POST", "/echo/", [("Content-Length", "100000")], b"x" * 5000))
    c.abort()
    assert server.get("/hello/").status == 200
    assert ["call", "/echo/"] not in server.events("router")[calls:]


kept = []


def keeper(environ, start_response):
    """Keeps a reference to each POST's wsgi.input; a GET tells whether the last one is
    closed."""
    if environ["REQUEST_METHOD"] == "POST":
        kept.append(environ["wsgi.input"])
        body = b"%d" % len(environ["wsgi.input"].read())
    else:
        body = b"closed" if kept and kept[-1].closed else b"open"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def test_spooled_body_file_is_closed_when_the_request_ends(start):
    # the body is the server's: the app keeping a reference does not keep its descriptor
    running = start.in_thread(keeper, spool_threshold=16)
    posted = running.get("/", method="POST", body=b"x" * 100)
    assert posted.body == b"100"
    assert not hasattr(kept[-1], "getvalue")  # a real file, not memory
    assert running.get("/").body == b"closed"
