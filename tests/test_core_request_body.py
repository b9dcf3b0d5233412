"""Request bodies: Content-Length, chunked with trailers, Expect: 100-continue, spooling to a
temporary file, and the wsgi.input methods."""

import hashlib
import json
import os
import subprocess

import pytest

from tests.support import RawClient, ServerProcess, build_request, chunked, get

LINES = b"first line\nsecond\n\nfourth line is longer\nno newline at the end"


def test_content_length_body_reaches_the_app(server):
    body = bytes(range(256)) * 40
    resp = get(server.port, "/echo/", method="POST", body=body)
    data = resp.json()
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["content_length"] == str(len(body))
    assert data["input_terminated"] is True


def test_zero_content_length_body(server):
    resp = get(server.port, "/echo/", method="POST", headers=[("Content-Length", "0")])
    data = resp.json()
    assert data["length"] == 0 and data["content_length"] == "0"


def test_chunked_body_with_trailers(server):
    with RawClient(server.host, server.port) as c:
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
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                             chunked(b"abc", b"defg", extension=b";name=value")))
        assert c.read_response().json()["body"] == "abcdefg"


def test_empty_chunked_body(server):
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")], chunked()))
        data = c.read_response().json()
        assert data["length"] == 0 and data["content_length"] == "0"


def test_expect_100_continue_is_answered_before_the_body_is_sent(server):
    body = b"sent only after 100 Continue"
    with RawClient(server.host, server.port) as c:
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
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Expect", "100-continue"),
                                                 ("Content-Length", "4")], b"data"))
        resp = c.read_response()
        assert resp.status == 200 and resp.json()["body"] == "data"
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_expect_100_continue_is_not_sent_for_http10(server):
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Expect", "100-continue"),
                                                 ("Content-Length", "2")], b"ok",
                             version="HTTP/1.0"))
        resp = c.read_response(interim=True)
        assert resp.status == 200, resp


def test_large_upload_is_spooled_to_a_real_file(server):
    body = os.urandom(10 * 1024 * 1024)
    with RawClient(server.host, server.port) as c:
        c.request("POST", "/echo/", body=body)
        data = c.read_response().json()
    assert data["length"] == len(body)
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["input_is_file"] is True, data  # fileno() of a regular file


def test_large_chunked_upload_is_spooled_to_a_real_file(server):
    parts = [os.urandom(65536) for _ in range(48)]  # 3 MiB, above the 1 MiB default
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                             chunked(*parts)))
        data = c.read_response().json()
    assert data["length"] == 48 * 65536
    assert data["content_length"] == str(48 * 65536)
    assert data["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()
    assert data["input_is_file"] is True


def test_small_upload_is_not_spooled(server):
    data = get(server.port, "/echo/", method="POST", body=b"small").json()
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


@pytest.fixture(scope="module")
def input_servers():
    """tests.apps:input_ops twice: bodies kept in memory, and spooled from 16 bytes on."""
    servers = {False: ServerProcess("tests.apps:input_ops"),
               True: ServerProcess("tests.apps:input_ops", spool_threshold=16)}
    try:
        for srv in servers.values():
            srv.start()
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()


@pytest.mark.parametrize("ops,expected", OPS_CASES, ids=[c[0] for c in OPS_CASES])
@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spooled"])
def test_wsgi_input_methods(input_servers, ops, expected, spooled):
    srv = input_servers[spooled]
    if not srv.alive():  # an earlier test crashed it (and failed): start afresh
        srv.stop()
        srv = input_servers[spooled] = ServerProcess(*srv.apps, **srv.options).start()
    with RawClient(srv.host, srv.port) as c:
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
    with RawClient(server.host, server.port) as c:
        c.request("POST", "/ignore_body/", body=smuggled)
        c.request("GET", "/environ/real")
        assert c.read_response().body == b"ignored"
        assert c.read_response().json()["PATH_INFO"] == "/environ/real"
        assert c.nothing_received(0.3)


def test_unread_chunked_body_does_not_become_a_request(server):
    smuggled = build_request("GET", "/environ/smuggled")
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/ignore_body/", [("Transfer-Encoding", "chunked")],
                             chunked(smuggled)))
        c.request("GET", "/environ/real")
        assert c.read_response().body == b"ignored"
        assert c.read_response().json()["PATH_INFO"] == "/environ/real"


def test_body_sent_slowly_in_pieces(server):
    body = b"0123456789" * 1000
    with RawClient(server.host, server.port) as c:
        c.send(build_request("POST", "/echo/", [("Content-Length", str(len(body)))]))
        c.send_slowly(body, step=997, delay=0.005)
        data = c.read_response().json()
    assert data["length"] == len(body) and data["body"] == body.decode()
