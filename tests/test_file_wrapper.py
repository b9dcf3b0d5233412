"""wsgi.file_wrapper (SPEC section 4): a real binary file goes out with sendfile(2) from the
position the app left it at, anything else is iterated; Content-Length, HEAD, 204 and 304,
write() before it and the connection after it all hold; the file is closed exactly once, also
when the client leaves or the file shrinks under the download.

The files live in the test's tmp_path; ``/file_wrapper/`` of tests/support/apps.py opens them
(``kind=file``: io's own binary file, sent with sendfile; ``kind=duck``: an object with a
descriptor and its own read(), iterated) and records their ``close``.
"""

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from urllib.parse import quote, urlencode

import pytest

from tests.support.client import assert_served_promptly, build_request, timed_request
from tests.support.server import ROUTER, RSS_MEANINGFUL, sample_while, unique_id
from tests.support.waits import wait_for

MB = 1024 * 1024


def make_file(path, size):
    """Write ``size`` bytes (each MiB different) to ``path``; returns their sha256."""
    block = bytearray(hashlib.sha256(path.name.encode()).digest() * (MB // 32))
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        written, i = 0, 0
        while written < size:
            block[:8] = i.to_bytes(8, "little")
            piece = bytes(block[:min(MB, size - written)])
            f.write(piece)
            digest.update(piece)
            written += len(piece)
            i += 1
    return digest.hexdigest()


def file_bytes(path, start=0, end=None):
    with open(path, "rb") as f:
        f.seek(start)
        return f.read() if end is None else f.read(end - start)


def wrapped(path, ident=None, **query):
    """The target of /file_wrapper/ for ``path`` (see tests/support/apps.py for ``query``)."""
    if ident:
        query["id"] = ident
    return "/file_wrapper/?" + urlencode(dict(query, path=str(path)), quote_via=quote)


def assert_closed_once(srv, ident, tmp_path):
    """The wrapped file was closed exactly once, and the server holds no file of the test."""
    assert srv.wait_event(ident, "close"), srv.events(ident)
    assert wait_for(lambda: srv.open_files_under(tmp_path) == []), srv.open_files_under(tmp_path)
    assert srv.count_events(ident, "close") == 1


@pytest.mark.parametrize("kind", ["file", "duck"])
def test_file_is_sent_whole_and_the_connection_is_reused(server, tmp_path, kind):
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"a small file\n")
    big_sha = make_file(big, 10 * MB + 123)
    idents = [unique_id() for _ in range(4)]
    with server.client() as c:
        for i, length in enumerate([{}, {"cl": 1}]):  # the big file without the app's
            # Content-Length, then with it; twice on one connection: no answer reuses another
            c.request("GET", wrapped(small, idents[2 * i], kind=kind, cl=1))
            resp = c.read_response()
            assert (resp.status, resp.body) == (200, b"a small file\n")
            assert resp.header("Content-Length") == "13"
            c.request("GET", wrapped(big, idents[2 * i + 1], kind=kind, **length))
            resp = c.read_response()
            assert resp.status == 200 and resp.complete
            assert resp.framing == "length" or not length
            assert hashlib.sha256(resp.body).hexdigest() == big_sha
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"
    for ident in idents:
        assert_closed_once(server, ident, tmp_path)


def test_file_gets_its_length_without_the_app_giving_one(server, tmp_path):
    path = tmp_path / "sized.bin"
    make_file(path, 300_000)
    resp = server.get(wrapped(path))
    assert resp.framing == "length" and resp.header("Content-Length") == "300000"
    assert resp.body == path.read_bytes()


def test_empty_file(server, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with server.client() as c:
        c.request("GET", wrapped(empty))
        resp = c.read_response()
        assert (resp.status, resp.header("Content-Length"), resp.body) == (200, "0", b"")
        assert timed_request(c, "/hello/") < 1


@pytest.mark.parametrize("kind", ["file", "duck"])
@pytest.mark.parametrize("cl", [None, 1])
def test_file_is_sent_from_the_position_the_app_seeked_to(server, tmp_path, kind, cl):
    path = tmp_path / "seek.bin"
    make_file(path, 300_000)
    resp = server.get(wrapped(path, kind=kind, offset=100_000, **({"cl": cl} if cl else {})))
    assert resp.status == 200
    assert resp.body == file_bytes(path, 100_000)


def test_file_is_sent_from_where_the_app_stopped_reading(server, tmp_path):
    # a buffered reader has read ahead much more than the 10 bytes the app took
    path = tmp_path / "partly-read.bin"
    make_file(path, 300_000)
    resp = server.get(wrapped(path, read_first=10))
    assert resp.status == 200
    assert resp.body == file_bytes(path, 10)


def test_object_whose_read_decodes_its_file_sends_what_read_returns(server, tmp_path):
    """A GzipFile has the fileno() of its compressed file: sendfile would send the compressed
    bytes.  The body must be what read() returns (PEP 3333)."""
    import gzip

    path = tmp_path / "text.gz"
    text = b"hello, gzip world\n" * 5000
    with gzip.open(path, "wb") as out:
        out.write(text)
    resp = server.get(wrapped(path, kind="gzip"))
    assert resp.status == 200
    assert resp.body == text, "got %d bytes starting %r" % (len(resp.body), resp.body[:20])


def test_bytesio_goes_through_the_wrapper_by_iteration(server, tmp_path):
    path = tmp_path / "memory.bin"
    make_file(path, 1_000_003)
    idents = [unique_id(), unique_id()]
    with server.client() as c:
        c.request("GET", wrapped(path, idents[0], kind="bytesio", blksize=10000))
        assert c.read_response().body == path.read_bytes()
        c.request("GET", wrapped(path, idents[1], kind="bytesio", cl=1))
        resp = c.read_response()
        assert resp.header("Content-Length") == "1000003" and resp.body == path.read_bytes()
    for ident in idents:
        assert_closed_once(server, ident, tmp_path)


def test_file_from_a_pipe_is_read_not_sent_with_sendfile(server, tmp_path):
    path = tmp_path / "piped.bin"
    make_file(path, 500_000)
    resp = server.get(wrapped(path, kind="pipe"))
    assert resp.status == 200 and resp.framing == "chunked"
    assert resp.body == path.read_bytes()


@pytest.mark.parametrize("cl", [None, 1])
def test_write_before_returning_a_file_wrapper(server, tmp_path, cl):
    path = tmp_path / "after-write.txt"
    path.write_bytes(b"then the file\n" * 1000)
    with server.client() as c:
        c.request("GET", wrapped(path, write_first=1, **({"cl": cl} if cl else {})))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body == b"written first\n" + path.read_bytes()
        assert timed_request(c, "/hello/") < 1  # the framing held: the connection is usable


@pytest.mark.parametrize("kind", ["file", "duck"])
def test_head_with_a_file_wrapper_sends_no_body(server, tmp_path, kind):
    path = tmp_path / "head.bin"
    make_file(path, 1_000_000)
    ident = unique_id()
    with server.client() as c:
        c.request("HEAD", wrapped(path, ident, kind=kind, cl=1))
        resp = c.read_response("HEAD")
        assert resp.status == 200 and resp.header("Content-Length") == "1000000"
        # no body follows: the next answer on the connection starts right after the head
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"
        assert not c.buf
    assert_closed_once(server, ident, tmp_path)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_with_a_file_wrapper_send_no_body(server, tmp_path, status):
    path = tmp_path / "nobody.txt"
    path.write_bytes(b"must not be sent")
    ident = unique_id()
    with server.client() as c:
        c.request("GET", wrapped(path, ident, status=status))
        resp = c.read_response()
        assert (resp.status, resp.body) == (int(status[:3]), b"")
        assert timed_request(c, "/hello/") < 1 and not c.buf
    assert_closed_once(server, ident, tmp_path)


@pytest.mark.parametrize("kind", ["file", "duck"])
def test_content_length_smaller_than_the_file_stops_there(server, tmp_path, kind):
    path = tmp_path / "cl.bin"
    make_file(path, 500_000)
    with server.client() as c:
        c.request("GET", wrapped(path, kind=kind, cl=1234))
        resp = c.read_response()
        assert resp.header("Content-Length") == "1234"
        assert resp.body == file_bytes(path, 0, 1234)
        # nothing beyond 1234 bytes was sent: closed, or ready for a clean next answer
        if not c.peer_closed(0.3):
            assert not c.buf, bytes(c.buf[:100])
            assert timed_request(c, "/hello/") < 1
        assert not c.buf


def test_file_shorter_than_content_length_cuts_the_connection(server, tmp_path):
    path = tmp_path / "short.bin"
    make_file(path, 50_000)
    ident = unique_id()
    with server.client() as c:
        c.request("GET", wrapped(path, ident, cl=80000))
        resp = c.read_response()
        assert resp.header("Content-Length") == "80000"
        assert not resp.complete and c.eof  # the client sees a truncated response
        assert resp.body == path.read_bytes()
    assert_closed_once(server, ident, tmp_path)


@pytest.mark.parametrize("kind", ["file", "duck"])
def test_pipelined_requests_around_files_are_answered_in_order(server, tmp_path, kind):
    path = tmp_path / "pipelined.bin"
    make_file(path, 3 * MB)
    with server.client() as c:
        c.send(build_request("GET", "/hello/") + build_request("GET", wrapped(path, kind=kind))
               + build_request("GET", "/hello/")
               + build_request("GET", wrapped(path, kind=kind, cl=10))
               + build_request("GET", "/hello/"))
        bodies = [c.read_response().body for _ in range(5)]
    assert bodies == [b"Hello, world!\n", path.read_bytes(), b"Hello, world!\n",
                      file_bytes(path, 0, 10), b"Hello, world!\n"]


def test_http10_client_gets_the_file_with_its_length(server, tmp_path):
    path = tmp_path / "old.bin"
    make_file(path, 200_000)
    with server.client() as c:
        c.send(("GET %s HTTP/1.0\r\n\r\n" % wrapped(path)).encode())
        resp = c.read_response()
        assert (resp.status, resp.header("Content-Length")) == (200, "200000")
        assert resp.body == path.read_bytes()
        assert c.peer_closed(5)  # and the connection is closed (no keep-alive asked)


def test_file_truncated_while_it_is_sent_cuts_the_connection(server, tmp_path):
    path = tmp_path / "shrinking.bin"
    make_file(path, 20 * MB)
    ident = unique_id()
    with server.client(rcvbuf=65536) as c:
        c.request("GET", wrapped(path, ident))
        head = c.read_head()
        assert head.status == 200 and head.header("Content-Length") == str(20 * MB)
        c.read_exact(1 * MB)
        os.truncate(path, 2 * MB)  # say, a log rotation under a download
        received = 1 * MB + len(c.read_to_eof())
    assert received < 20 * MB  # a truncated response, never a hang or a padded one
    assert_closed_once(server, ident, tmp_path)
    assert server.get("/hello/").status == 200


def test_client_leaving_mid_file_closes_the_file_and_leaks_no_fd(start, tmp_path):
    srv = start.apps(ROUTER)
    path = tmp_path / "leave.bin"
    make_file(path, 20 * MB)
    idents = [unique_id() for _ in range(20)]
    with srv.client() as hello:
        assert timed_request(hello, "/hello/") < 1
        fds_before = srv.fd_targets()
        for i, ident in enumerate(idents):
            c = srv.client(rcvbuf=65536)
            c.request("GET", wrapped(path, ident))
            assert c.read_head().status == 200
            c.read_exact(100_000 + i)
            if i % 2:  # a reset instead of a FIN for half of them
                c.abort()
            else:
                c.close()
        for ident in idents:
            assert_closed_once(srv, ident, tmp_path)
        assert wait_for(lambda: srv.fd_targets() == fds_before), (srv.fd_targets(), fds_before)
        assert timed_request(hello, "/hello/") < 1


DOWNLOADER = textwrap.dedent('''
    import hashlib, json, selectors, socket, sys, time
    port, count, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sel = selectors.DefaultSelector()
    states = []
    for i in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(("GET %s HTTP/1.1\\r\\nHost: t\\r\\nConnection: close\\r\\n\\r\\n"
                   % target).encode())
        s.setblocking(False)
        st = {"head": b"", "status": None, "cl": None, "bytes": 0,
              "digest": hashlib.sha256(), "seconds": None}
        states.append(st)
        sel.register(s, selectors.EVENT_READ, st)
    t0 = time.monotonic()
    left = count
    while left and time.monotonic() - t0 < 600:
        for key, _ in sel.select(timeout=1):
            s, st = key.fileobj, key.data
            try:
                data = s.recv(1 << 20)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                sel.unregister(s)
                s.close()
                left -= 1
                st["seconds"] = time.monotonic() - t0
                continue
            if st["status"] is None:
                st["head"] += data
                if b"\\r\\n\\r\\n" not in st["head"]:
                    continue
                head, data = st["head"].split(b"\\r\\n\\r\\n", 1)
                lines = head.decode("latin-1").split("\\r\\n")
                st["status"] = int(lines[0].split()[1])
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        st["cl"] = int(value)
            st["digest"].update(data)
            st["bytes"] += len(data)
    for st in states:
        st["sha256"] = st.pop("digest").hexdigest()
        del st["head"]
    print(json.dumps({"seconds": time.monotonic() - t0, "results": states}))
''')


@pytest.mark.soak
@pytest.mark.timeout(900)
def test_fifty_concurrent_downloads_of_a_100mb_file(start, tmp_path):
    clients, size = 50, 100 * MB
    path = tmp_path / "hundred.bin"
    sha = make_file(path, size)
    srv = start.apps(ROUTER)
    ident = unique_id()
    script = tmp_path / "downloader.py"
    script.write_text(DOWNLOADER)
    out_path = tmp_path / "downloader.out"
    try:
        with srv.client() as hello:
            for _ in range(3):
                timed_request(hello, "/hello/")
            rss_start = srv.rss_kib()
            with open(out_path, "w") as out:
                down = subprocess.Popen([sys.executable, str(script), str(srv.port),
                                         str(clients), wrapped(path, ident)],
                                        stdout=out, stderr=subprocess.STDOUT)
            try:
                latencies, rss_peak = sample_while(lambda: down.poll() is None, srv, hello)
                assert down.poll() is not None, "the downloads did not finish in time"
            finally:
                if down.poll() is None:
                    down.kill()
                    down.wait()
        report = json.loads(out_path.read_text().strip().splitlines()[-1])
        closes = srv.wait_event(ident, "close", count=clients)
        leftover = srv.open_files_under(tmp_path)
    finally:
        path.unlink()
    latencies.sort()
    total = clients * size
    print("\n[downloads] %d clients x %d MiB: %.1f s (%.0f MB/s in all); server RSS %.1f MB "
          "at start, %.1f MB peak; %d hello requests meanwhile: median %.2f ms, max %.2f ms"
          % (clients, size // MB, report["seconds"], total / report["seconds"] / 1e6,
             rss_start / 1024, rss_peak / 1024, len(latencies),
             latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000))
    for st in report["results"]:
        assert (st["status"], st["cl"], st["bytes"], st["sha256"]) == (200, size, size, sha)
    assert closes, "close() count: %d" % srv.count_events(ident, "close")
    assert leftover == []
    assert not RSS_MEANINGFUL or rss_peak < 64 * 1024
    assert len(latencies) >= 3
    assert_served_promptly(latencies)
