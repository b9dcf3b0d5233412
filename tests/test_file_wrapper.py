"""wsgi.file_wrapper and sendfile (SPEC section 4), and the bottle file-host example.

Every server runs in a subprocess on 127.0.0.1, port 0, and is talked to over real sockets.
The apps (APPS_SOURCE below) log the close() of the files they hand to the wrapper as JSON
lines to a file named by $EVENTS.  Large files live in the test's tmp_path and are deleted at
the end of the test.  Figures are printed: run ``pytest -s`` to see them.
"""

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.script_server import Server  # noqa: E402
from tests.support import RSS_MEANINGFUL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RSS_LIMIT_KB = 64 * 1024
HELLO_LIMIT_S = 0.050
MB = 1024 * 1024

APPS_SOURCE = textwrap.dedent('''
    import io
    import json
    import os
    import sys
    from urllib.parse import parse_qs

    import aiowsgi

    EVENTS = os.environ.get("EVENTS")


    def event(**fields):
        if EVENTS:
            with open(EVENTS, "a") as f:
                f.write(json.dumps(fields) + "\\n")


    class LoggedFile(io.BufferedReader):
        """A real file (fileno() of a regular file) that logs its close()."""

        def close(self):
            if not self.closed:
                event(kind="close", what="file", name=os.path.basename(self.raw.name))
            super().close()


    class LoggedBytesIO(io.BytesIO):
        """A file-like object with no file descriptor."""

        def close(self):
            if not self.closed:
                event(kind="close", what="bytesio")
            super().close()


    def app(environ, start_response):
        path = environ["PATH_INFO"]
        query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
        wrapper = environ["wsgi.file_wrapper"]
        if path == "/hello":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello"]
        if path == "/file":
            f = LoggedFile(io.FileIO(query["path"]))
            if "seek" in query:
                f.seek(int(query["seek"]))
            headers = [("Content-Type", "application/octet-stream")]
            if "cl" in query:
                headers.append(("Content-Length", query["cl"]))
            start_response("200 OK", headers)
            return wrapper(f, 65536)
        if path == "/read-first":
            f = LoggedFile(io.FileIO(query["path"]))
            f.read(int(query["n"]))  # the buffered reader reads ahead much more than n
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return wrapper(f)
        if path == "/gzip":
            import gzip
            start_response("200 OK", [("Content-Type", "text/plain")])
            return wrapper(gzip.open(query["path"], "rb"))
        if path == "/pipe":
            import subprocess
            proc = subprocess.Popen(["cat", query["path"]], stdout=subprocess.PIPE)
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return wrapper(proc.stdout)  # a pipe: no sendfile, read() until EOF
        if path == "/status":
            f = LoggedFile(io.FileIO(query["path"]))
            start_response(query["status"], [("Content-Type", "text/plain")])
            return wrapper(f)
        if path == "/write-then-file":
            headers = [("Content-Type", "text/plain")]
            if "cl" in query:
                headers.append(("Content-Length", query["cl"]))
            write = start_response("200 OK", headers)
            write(b"written first\\n")  # PEP 3333's write(), then an iterable: both go out
            return wrapper(LoggedFile(io.FileIO(query["path"])))
        if path == "/bytesio":
            size = int(query["size"])
            data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
            headers = [("Content-Type", "application/octet-stream")]
            if "cl" in query:
                headers.append(("Content-Length", query["cl"]))
            start_response("200 OK", headers)
            return wrapper(LoggedBytesIO(data), int(query.get("blksize", "8192")))
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test app"]


    if __name__ == "__main__":
        options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
        aiowsgi.serve(app, bind="127.0.0.1:0", **options)
''')

# ---- helpers: a server subprocess, /proc figures, a raw HTTP/1.1 client ----------------------


@pytest.fixture
def start_app(tmp_path):
    """start_app(**options): APPS_SOURCE in a fresh server, with ``events()``."""
    script = tmp_path / "file_apps.py"
    script.write_text(APPS_SOURCE)
    events_path = tmp_path / "events.jsonl"
    servers = []

    def start(**options):
        srv = Server([sys.executable, str(script), json.dumps(options)], tmp_path,
                     env={"EVENTS": str(events_path)})
        servers.append(srv)
        srv.events = lambda: ([json.loads(x) for x in events_path.read_text().splitlines() if x]
                              if events_path.exists() else [])
        return srv

    yield start
    for srv in servers:
        srv.stop()


def wait_for(predicate, timeout=5.0, interval=0.01):
    """Poll ``predicate`` until it returns something true; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Client:
    """A raw HTTP/1.1 client: what is sent is exactly what the test wrote."""

    def __init__(self, port, timeout=10.0, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data

    def read_until(self, marker):
        for _ in range(100000):
            at = self.buf.find(marker)
            if at >= 0:
                out, self.buf = self.buf[:at + len(marker)], self.buf[at + len(marker):]
                return out
            self._fill()
        raise AssertionError("no %r" % marker)

    def read_exact(self, n):
        parts, have = [self.buf], len(self.buf)
        for _ in range(10000000):
            if have >= n:
                break
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("closed after %d of %d bytes" % (have, n))
            parts.append(data)
            have += len(data)
        joined = b"".join(parts)
        self.buf = joined[n:]
        return joined[:n]

    def read_head(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def read_response(self, head_request=False):
        status, headers = self.read_head()
        if head_request or status in (204, 304):
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self.read_exact(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            body = []
            for _ in range(10000000):
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")
                    return status, headers, b"".join(body)
                body.append(self.read_exact(size))
                self.read_exact(2)
        return status, headers, self.read_to_eof()

    def read_to_eof(self):
        parts = [self.buf]
        self.buf = b""
        for _ in range(10000000):
            try:
                data = self.sock.recv(262144)
            except ConnectionResetError:
                break
            if not data:
                break
            parts.append(data)
        return b"".join(parts)


def get(path, *headers, method="GET"):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: test"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def hello_latency(client):
    t0 = time.perf_counter()
    client.send(get("/hello"))
    status, _, body = client.read_response()
    elapsed = time.perf_counter() - t0
    assert (status, body) == (200, b"hello")
    return elapsed


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


# ---- the file wrapper -----------------------------------------------------------------------


def test_file_is_sent_whole_and_the_connection_is_reused(start_app, tmp_path):
    srv = start_app()
    small, big = tmp_path / "small.txt", tmp_path / "big.bin"
    small.write_bytes(b"a small file\n")
    big_sha = make_file(big, 10 * MB + 123)
    c = Client(srv.port)
    for _ in range(2):  # twice on one connection: the second answer must not reuse the first
        c.send(get("/file?path=%s" % small))
        status, headers, body = c.read_response()
        assert (status, body) == (200, b"a small file\n")
        assert headers["content-length"] == "13"
        c.send(get("/file?path=%s" % big))
        status, headers, body = c.read_response()
        assert status == 200
        assert int(headers["content-length"]) == 10 * MB + 123
        assert hashlib.sha256(body).hexdigest() == big_sha
    assert hello_latency(c) < 1
    closes = wait_for(lambda: len([e for e in srv.events() if e["kind"] == "close"]) == 4)
    assert closes, srv.events()
    assert wait_for(lambda: srv.open_files_under(tmp_path) == []), srv.open_files_under(tmp_path)


def test_empty_file(start_app, tmp_path):
    srv = start_app()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    c = Client(srv.port)
    c.send(get("/file?path=%s" % empty))
    status, headers, body = c.read_response()
    assert (status, headers["content-length"], body) == (200, "0", b"")
    assert hello_latency(c) < 1


def test_file_sent_from_the_position_the_app_seeked_to(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "seek.bin"
    make_file(f, 300_000)
    c = Client(srv.port)
    c.send(get("/file?path=%s&seek=100000" % f))
    status, headers, body = c.read_response()
    assert status == 200
    assert body == file_bytes(f, 100_000)
    assert headers["content-length"] == "200000"


def test_file_sent_from_where_the_app_stopped_reading(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "partly-read.bin"
    make_file(f, 300_000)
    c = Client(srv.port)
    c.send(get("/read-first?path=%s&n=10" % f))
    status, headers, body = c.read_response()
    assert status == 200
    assert body == file_bytes(f, 10)


def test_wrapped_object_whose_read_decodes_its_file_sends_what_read_returns(start_app,
                                                                           tmp_path):
    """A GzipFile has the fileno() of its compressed file: sendfile would send the
    compressed bytes. The body must be what read() returns (PEP 3333)."""
    import gzip
    srv = start_app()
    f = tmp_path / "text.gz"
    text = b"hello, gzip world\n" * 5000
    with gzip.open(f, "wb") as out:
        out.write(text)
    c = Client(srv.port)
    c.send(get("/gzip?path=%s" % f))
    status, headers, body = c.read_response()
    assert status == 200
    assert body == text, "got %d bytes starting %r" % (len(body), body[:20])


@pytest.mark.parametrize("with_length", [False, True])
def test_write_before_returning_a_file_wrapper(start_app, tmp_path, with_length):
    srv = start_app()
    f = tmp_path / "after-write.txt"
    f.write_bytes(b"then the file\n" * 1000)
    expected = b"written first\n" + f.read_bytes()
    c = Client(srv.port, timeout=5)
    query = "/write-then-file?path=%s" % f
    if with_length:
        query += "&cl=%d" % len(expected)
    c.send(get(query))
    status, headers, body = c.read_response()
    assert status == 200
    assert body == expected
    assert hello_latency(c) < 1  # the framing held: the connection is still usable


def test_head_with_a_file_wrapper_sends_no_body(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "head.bin"
    make_file(f, 1_000_000)
    c = Client(srv.port)
    c.send(get("/file?path=%s" % f, method="HEAD"))
    status, headers, _ = c.read_response(head_request=True)
    assert status == 200
    assert headers["content-length"] == "1000000"
    # no body follows: the next answer on the connection starts right after the head
    assert hello_latency(c) < 1
    assert c.buf == b""
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])
    assert wait_for(lambda: srv.open_files_under(tmp_path) == [])


def test_content_length_smaller_than_the_file_stops_there(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "cl.bin"
    make_file(f, 500_000)
    c = Client(srv.port)
    c.send(get("/file?path=%s&cl=1234" % f))
    status, headers, body = c.read_response()
    assert status == 200 and headers["content-length"] == "1234"
    assert body == file_bytes(f, 0, 1234)
    assert hello_latency(c) < 1  # nothing beyond 1234 bytes was sent
    assert c.buf == b""


def test_file_shorter_than_content_length_cuts_the_connection(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "short.bin"
    make_file(f, 50_000)
    c = Client(srv.port)
    c.send(get("/file?path=%s&cl=80000" % f))
    status, headers = c.read_head()
    assert status == 200 and headers["content-length"] == "80000"
    body = c.read_to_eof()  # the server closes: the client sees a truncated response
    assert body == file_bytes(f)
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])
    assert wait_for(lambda: srv.open_files_under(tmp_path) == [])
    other = Client(srv.port)
    assert hello_latency(other) < 1


def test_bytesio_goes_through_the_wrapper_by_iteration(start_app):
    srv = start_app()
    size = 1_000_003
    expected = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    c = Client(srv.port)
    c.send(get("/bytesio?size=%d&blksize=10000" % size))
    status, headers, body = c.read_response()
    assert status == 200
    assert body == expected
    c.send(get("/bytesio?size=%d&cl=%d" % (size, size)))
    status, headers, body = c.read_response()
    assert status == 200 and headers["content-length"] == str(size)
    assert body == expected
    closes = wait_for(lambda: len([e for e in srv.events() if e["kind"] == "close"]) == 2)
    assert closes and all(e["what"] == "bytesio" for e in srv.events())


def test_slow_reader_gets_the_whole_file_and_blocks_no_one(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "slow.bin"
    sha = make_file(f, 8 * MB)
    rss_before = srv.rss_kb()
    slow = Client(srv.port, rcvbuf=16384)
    slow.send(get("/file?path=%s" % f))
    status, headers = slow.read_head()
    assert status == 200
    other = Client(srv.port)
    digest, got, latencies = hashlib.sha256(slow.buf), len(slow.buf), []
    slow.buf = b""
    deadline = time.monotonic() + 60
    while got < 8 * MB and time.monotonic() < deadline:
        data = slow.sock.recv(min(16384, 8 * MB - got))
        assert data
        digest.update(data)
        got += len(data)
        if len(latencies) < 200 and got % (256 * 1024) < 16384:
            latencies.append(hello_latency(other))
        time.sleep(0.0005)
    rss_after = srv.rss_kb()
    print("\n[slow reader] 8 MiB read 16 KiB at a time; %d hello requests meanwhile: max "
          "%.2f ms; server RSS %.1f -> %.1f MB"
          % (len(latencies), max(latencies) * 1000, rss_before / 1024, rss_after / 1024))
    assert got == 8 * MB and digest.hexdigest() == sha
    assert max(latencies) < HELLO_LIMIT_S
    assert not RSS_MEANINGFUL or rss_after - rss_before < 8 * 1024


def test_slow_download_outlasting_the_keepalive_timeout_is_not_cut(start_app, tmp_path):
    """The keep-alive timeout is for idle connections; one still sending its file is not."""
    srv = start_app(keepalive=1)
    f = tmp_path / "long.bin"
    sha = make_file(f, 6 * MB)
    c = Client(srv.port, rcvbuf=16384)
    c.send(get("/file?path=%s" % f))
    assert c.read_head()[0] == 200
    digest, got = hashlib.sha256(c.buf), len(c.buf)
    c.buf = b""
    t0 = time.monotonic()
    while got < 6 * MB and time.monotonic() - t0 < 60:
        data = c.sock.recv(16384)
        if not data:
            break
        digest.update(data)
        got += len(data)
        time.sleep(0.015)
    elapsed = time.monotonic() - t0
    assert elapsed > 3  # several keep-alive timeouts long
    assert got == 6 * MB, "cut after %d bytes and %.1f s" % (got, elapsed)
    assert digest.hexdigest() == sha


def test_client_leaving_mid_file_closes_the_file_and_leaks_no_fd(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "leave.bin"
    make_file(f, 20 * MB)
    hello = Client(srv.port)
    hello_latency(hello)
    fds_before = srv.fds()
    for i in range(20):
        c = Client(srv.port, rcvbuf=65536)
        c.send(get("/file?path=%s" % f))
        status, _ = c.read_head()
        assert status == 200
        c.read_exact(100_000 + i)
        if i % 2:  # reset instead of a FIN for half of them
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    closes = wait_for(lambda: len([e for e in srv.events() if e["kind"] == "close"]) == 20)
    assert closes, srv.events()
    assert wait_for(lambda: srv.open_files_under(tmp_path) == []), srv.open_files_under(tmp_path)
    assert wait_for(lambda: srv.fds() == fds_before), (srv.fds(), fds_before)
    assert hello_latency(hello) < 1


def test_pipelined_requests_around_a_file_are_answered_in_order(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "pipelined.bin"
    make_file(f, 3 * MB)
    c = Client(srv.port)
    c.send(get("/hello") + get("/file?path=%s" % f) + get("/hello")
           + get("/file?path=%s&cl=10" % f) + get("/hello"))
    assert c.read_response()[2] == b"hello"
    assert c.read_response()[2] == f.read_bytes()
    assert c.read_response()[2] == b"hello"
    assert c.read_response()[2] == file_bytes(f, 0, 10)
    assert c.read_response()[2] == b"hello"


def test_http10_client_gets_the_file_with_its_length(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "old.bin"
    make_file(f, 200_000)
    c = Client(srv.port)
    c.send(("GET /file?path=%s HTTP/1.0\r\n\r\n" % f).encode())
    status, headers, body = c.read_response()
    assert (status, headers["content-length"]) == (200, "200000")
    assert body == f.read_bytes()
    assert c.read_to_eof() == b""  # and the connection is closed (no keep-alive asked)


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_statuses_with_a_file_wrapper_send_no_body(start_app, tmp_path, status):
    srv = start_app()
    f = tmp_path / "nobody.txt"
    f.write_bytes(b"must not be sent")
    c = Client(srv.port)
    c.send(get("/status?path=%s&status=%s" % (f, status.replace(" ", "+"))))
    code, headers, body = c.read_response()
    assert (code, body) == (int(status[:3]), b"")
    assert hello_latency(c) < 1 and c.buf == b""
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])


def test_file_from_a_pipe_is_read_not_sent_with_sendfile(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "piped.bin"
    make_file(f, 500_000)
    c = Client(srv.port)
    c.send(get("/pipe?path=%s" % f))
    status, headers, body = c.read_response()
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert body == f.read_bytes()


def test_file_truncated_while_it_is_sent_cuts_the_connection(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "shrinking.bin"
    make_file(f, 20 * MB)
    c = Client(srv.port, rcvbuf=65536)
    c.send(get("/file?path=%s" % f))
    status, headers = c.read_head()
    assert status == 200 and headers["content-length"] == str(20 * MB)
    c.read_exact(1 * MB)
    os.truncate(f, 2 * MB)  # say, a log rotation under a download
    received = 1 * MB + len(c.read_to_eof())
    assert received < 20 * MB  # a truncated response, never a hang or a padded one
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])
    assert wait_for(lambda: srv.open_files_under(tmp_path) == [])
    assert hello_latency(Client(srv.port)) < 1


def test_graceful_stop_lets_a_download_finish(start_app, tmp_path):
    srv = start_app()
    f = tmp_path / "during-stop.bin"
    sha = make_file(f, 16 * MB)
    c = Client(srv.port, rcvbuf=65536)
    c.send(get("/file?path=%s" % f))
    status, headers = c.read_head()
    assert status == 200
    first = c.read_exact(1 * MB)
    srv.proc.send_signal(signal.SIGTERM)  # graceful: in-flight responses finish
    time.sleep(0.3)
    assert srv.proc.poll() is None
    rest = c.read_exact(15 * MB)
    assert hashlib.sha256(first + rest).hexdigest() == sha
    assert srv.proc.wait(10) == 0


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


@pytest.mark.timeout(900)
def test_fifty_concurrent_downloads_of_a_100mb_file(start_app, tmp_path):
    clients, size = 50, 100 * MB
    f = tmp_path / "hundred.bin"
    sha = make_file(f, size)
    try:
        srv = start_app()
        hello = Client(srv.port)
        for _ in range(3):
            hello_latency(hello)
        rss_start = rss_peak = srv.rss_kb()
        script = tmp_path / "downloader.py"
        script.write_text(DOWNLOADER)
        out = open(tmp_path / "downloader.out", "w+")
        down = subprocess.Popen([sys.executable, str(script), str(srv.port), str(clients),
                                 "/file?path=%s" % f], stdout=out, stderr=subprocess.STDOUT)
        latencies = []
        deadline = time.monotonic() + 800
        next_hello = time.monotonic()
        while down.poll() is None and time.monotonic() < deadline:
            rss_peak = max(rss_peak, srv.rss_kb())
            if time.monotonic() >= next_hello:
                latencies.append(hello_latency(hello))
                next_hello = time.monotonic() + 0.05
            time.sleep(0.01)
        if down.poll() is None:
            down.kill()
            pytest.fail("the downloads did not finish in time")
        out.seek(0)
        text = out.read()
        out.close()
        report = json.loads(text.strip().splitlines()[-1])
        closes = wait_for(lambda: len([e for e in srv.events() if e["kind"] == "close"])
                          == clients)
        leftover = srv.open_files_under(tmp_path)
    finally:
        f.unlink()
    latencies.sort()
    total = clients * size
    print("\n[downloads] %d clients x %d MiB: %.1f s (%.0f MB/s in all); server RSS %.1f MB "
          "at start, %.1f MB peak; %d hello requests meanwhile: median %.2f ms, max %.2f ms"
          % (clients, size // MB, report["seconds"], total / report["seconds"] / 1e6,
             rss_start / 1024, rss_peak / 1024, len(latencies),
             latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000))
    for st in report["results"]:
        assert (st["status"], st["cl"], st["bytes"], st["sha256"]) == (200, size, size, sha)
    assert closes, "close() count: %d" % len(srv.events())
    assert leftover == []
    assert not RSS_MEANINGFUL or rss_peak < RSS_LIMIT_KB
    assert len(latencies) >= 3
    assert latencies[-1] < HELLO_LIMIT_S


# ---- the bottle example, run the way README.rst (Serving files) says ------------------------------------


@pytest.fixture
def bottle_demo(tmp_path):
    pytest.importorskip("bottle")
    media = tmp_path / "media"
    media.mkdir()
    (media / "notes.txt").write_text("some notes\n")
    (media / "a film.mp4").write_bytes(bytes(range(256)) * 4000)
    make_file(media / "big.iso", 5 * MB)
    (media / ".hidden").write_text("not listed\n")
    srv = Server([sys.executable, str(ROOT / "examples" / "bottle_files.py"), str(media), "0"],
                 tmp_path)
    yield srv, media
    srv.stop()


def test_bottle_demo_through_the_command_line_factory(tmp_path):
    """``FILES_DIR=DIR aiowsgi --chdir examples --factory bottle_files:from_env``."""
    pytest.importorskip("bottle")
    media = tmp_path / "media"
    media.mkdir()
    sha = make_file(media / "clip.mp4", 3 * MB)
    srv = Server([sys.executable, "-m", "aiowsgi", "--chdir", str(ROOT / "examples"),
                  "--bind", "127.0.0.1:0", "--factory", "bottle_files:from_env"],
                 tmp_path, env={"FILES_DIR": str(media)})
    try:
        c = Client(srv.port)
        c.send(get("/"))
        status, _, page = c.read_response()
        assert status == 200 and b'<a href="/files/clip.mp4">clip.mp4</a>' in page
        c.send(get("/files/clip.mp4"))
        status, headers, body = c.read_response()
        assert (status, headers["content-type"]) == (200, "video/mp4")
        assert hashlib.sha256(body).hexdigest() == sha
    finally:
        srv.stop()


def test_bottle_demo_lists_the_files_as_links(bottle_demo):
    srv, media = bottle_demo
    c = Client(srv.port)
    c.send(get("/"))
    status, headers, body = c.read_response()
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert '<a href="/files/notes.txt">notes.txt</a>' in page
    assert '<a href="/files/a%20film.mp4">a film.mp4</a>' in page
    assert '<a href="/watch/a%20film.mp4">' in page
    assert '<a href="/files/big.iso">big.iso</a> (%d bytes)' % (5 * MB) in page
    assert ".hidden" not in page
    c.send(get("/watch/a%20film.mp4"))
    status, _, body = c.read_response()
    assert status == 200 and b'<video controls' in body and b'src="/files/a%20film.mp4"' in body


def test_bottle_demo_serves_a_file_whole(bottle_demo):
    srv, media = bottle_demo
    c = Client(srv.port)
    for name in ("big.iso", "notes.txt", "a%20film.mp4"):
        c.send(get("/files/" + name))
        status, headers, body = c.read_response()
        assert status == 200
        assert body == (media / name.replace("%20", " ")).read_bytes()
        assert headers["accept-ranges"] == "bytes"
    c.send(get("/files/notes.txt", method="HEAD"))
    status, headers, _ = c.read_response(head_request=True)
    assert status == 200 and headers["content-length"] == "11"
    c.send(get("/files/nothing-here"))
    assert c.read_response()[0] == 404
    c.send(get("/files/..%2f..%2fetc%2fpasswd"))
    assert c.read_response()[0] in (403, 404)


def test_bottle_demo_answers_range_requests(bottle_demo):
    srv, media = bottle_demo
    data = (media / "big.iso").read_bytes()
    c = Client(srv.port)
    for spec, start, end in (("1000-1999", 1000, 2000), ("-500", len(data) - 500, len(data)),
                             ("%d-" % (len(data) - 10), len(data) - 10, len(data))):
        c.send(get("/files/big.iso", "Range: bytes=" + spec))
        status, headers, body = c.read_response()
        assert status == 206, (spec, status)
        assert headers["content-range"] == "bytes %d-%d/%d" % (start, end - 1, len(data))
        assert body == data[start:end]
    c.send(get("/files/big.iso", "Range: bytes=%d-" % (len(data) + 5)))
    assert c.read_response()[0] == 416


def test_bottle_demo_conditional_get_is_304(bottle_demo):
    srv, media = bottle_demo
    c = Client(srv.port)
    c.send(get("/files/notes.txt"))
    status, headers, _ = c.read_response()
    c.send(get("/files/notes.txt", "If-None-Match: " + headers["etag"]))
    status, headers, body = c.read_response()
    assert (status, body) == (304, b"")
    assert hello_bottle(c) == 200


def hello_bottle(c):
    c.send(get("/"))
    return c.read_response()[0]
