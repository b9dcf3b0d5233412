"""Streaming input (SPEC section 5): the would-block sentinel, against a real server.

Every server runs in a subprocess on 127.0.0.1, port 0, and is talked to over real sockets.
The apps (APPS_SOURCE below) log what they see (chunks, sentinels, errors, close()) as JSON
lines to a file named by $EVENTS, so the tests can check the app's side as well as the wire.
The memory and latency test drives examples/upload_hash.py exactly as a user runs it.

Figures (upload time, peak RSS, hello latencies, CPU while paused) are printed: run with
``pytest -s tests/test_streaming_input.py`` to see them.  UPLOAD_MB (default 1024) sets the
size of the big upload.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from tests.script_server import Server  # noqa: E402
from tests.support import RSS_MEANINGFUL  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_MB = int(os.environ.get("UPLOAD_MB", "1024"))
RSS_LIMIT_KB = 64 * 1024
HELLO_LIMIT_S = 0.050

# ---- the apps under test -------------------------------------------------------------------

APPS_SOURCE = textwrap.dedent('''
    import hashlib
    import json
    import os
    import sys

    import aiowsgi

    EVENTS = os.environ.get("EVENTS")


    def event(**fields):
        if EVENTS:
            with open(EVENTS, "a") as f:
                f.write(json.dumps(fields) + "\\n")


    def answer(start_response, obj, status="200 OK"):
        body = json.dumps(obj).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body)))])
        return body


    class Logged:
        """A response iterable that logs its close() (PEP 3333: called exactly once)."""

        def __init__(self, tag, gen):
            self.tag, self.gen = tag, gen

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.gen)

        def close(self):
            event(kind="close", tag=self.tag)
            self.gen.close()


    def hash_body(environ, start_response, extra=None):
        """Iterate wsgi.input: chunks, and the sentinel when nothing is there yet."""
        sentinel = environ["aiowsgi.input_sentinel"]
        digest, total, chunks, sentinels = hashlib.sha256(), 0, 0, 0
        try:
            for chunk in environ["wsgi.input"]:
                if chunk is sentinel:
                    sentinels += 1
                    event(kind="sentinel", bytes=total)
                    yield sentinel
                    continue
                assert type(chunk) is bytes and chunk, repr(chunk)[:80]
                digest.update(chunk)
                total += len(chunk)
                chunks += 1
                event(kind="data", bytes=total)
        except Exception as exc:
            event(kind="error", type=type(exc).__name__,
                  oserror=isinstance(exc, OSError), bytes=total)
            raise
        result = {"bytes": total, "sha256": digest.hexdigest(), "chunks": chunks,
                  "sentinels": sentinels}
        result.update(extra or {})
        yield answer(start_response, result)


    def read_body(environ, start_response, size, line):
        """read(n) / readline(): what is buffered, BlockingIOError when nothing is."""
        sentinel = environ["aiowsgi.input_sentinel"]
        stream = environ["wsgi.input"]
        digest, total, blocked, biggest, pieces = hashlib.sha256(), 0, 0, 0, []
        while True:
            try:
                data = stream.readline() if line else stream.read(size)
            except BlockingIOError:
                blocked += 1
                yield sentinel
                continue
            if not data:
                break
            digest.update(data)
            total += len(data)
            biggest = max(biggest, len(data))
            if line:
                pieces.append(data.decode("latin-1"))
        again = [stream.read(size), stream.readline(), stream.read()]
        yield answer(start_response, {
            "bytes": total, "sha256": digest.hexdigest(), "blocked": blocked,
            "biggest": biggest, "lines": pieces, "empty_after_end": again == [b"", b"", b""]})


    def readlines_body(environ, start_response):
        """readlines(): the buffered lines, BlockingIOError when nothing is buffered."""
        sentinel = environ["aiowsgi.input_sentinel"]
        stream = environ["wsgi.input"]
        text, calls = [], []
        while True:
            try:
                lines = stream.readlines()
            except BlockingIOError:
                calls.append("blocked")
                yield sentinel
                continue
            calls.append(len(lines))
            if not lines:
                break
            text.extend(line.decode("latin-1") for line in lines)
        yield answer(start_response, {"text": "".join(text), "calls": calls})


    def echo(environ, start_response):
        """Send each chunk back as it arrives (chunked response)."""
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for chunk in environ["wsgi.input"]:
            yield chunk  # the sentinel is passed through: the server waits for more


    def first_read(environ, start_response):
        """read() in the app call itself, before any body byte can have arrived."""
        try:
            environ["wsgi.input"].read(10)
            outcome = "data"
        except BlockingIOError:
            outcome = "BlockingIOError"
        return hash_body(environ, start_response, {"first_read": outcome})


    def fail_midway(environ, start_response):
        """An app bug in the middle of the body."""
        sentinel = environ["aiowsgi.input_sentinel"]
        for chunk in environ["wsgi.input"]:
            if chunk is sentinel:
                yield sentinel
                continue
            raise ValueError("the app failed after %d bytes" % len(chunk))
        yield b"never"


    def write_progress(environ, start_response):
        """start_response's write() between sentinels: progress lines as the body arrives."""
        sentinel = environ["aiowsgi.input_sentinel"]
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        total = 0
        for chunk in environ["wsgi.input"]:
            if chunk is sentinel:
                yield sentinel
                continue
            total += len(chunk)
            write(b"%d\\n" % total)
        yield b"done %d\\n" % total


    def app(environ, start_response):
        path = environ["PATH_INFO"]
        event(kind="call", path=path, method=environ["REQUEST_METHOD"],
              content_length=environ.get("CONTENT_LENGTH"),
              same_sentinel=environ.get("aiowsgi.input_sentinel") is not None
              and environ.get("aiowsgi.input_sentinel") is environ.get("wsgi.input_sentinel"))
        if path == "/hello":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hello"]
        if path == "/hash":
            return Logged(path, hash_body(environ, start_response))
        if path == "/read":
            size = int(environ["QUERY_STRING"] or "-1")
            return Logged(path, read_body(environ, start_response, size, False))
        if path == "/readline":
            return Logged(path, read_body(environ, start_response, -1, True))
        if path == "/readlines":
            return Logged(path, readlines_body(environ, start_response))
        if path == "/echo":
            return Logged(path, echo(environ, start_response))
        if path == "/first-read":
            return Logged(path, first_read(environ, start_response))
        if path == "/fail":
            return Logged(path, fail_midway(environ, start_response))
        if path == "/write":
            return Logged(path, write_progress(environ, start_response))
        if path == "/no-read":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"not read"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test app"]


    def unmarked(environ, start_response):
        """Not marked with streaming_input: what does it get?"""
        stream = environ["wsgi.input"]
        event(kind="call", path=environ["PATH_INFO"], method=environ["REQUEST_METHOD"],
              content_length=environ.get("CONTENT_LENGTH"), same_sentinel=None)
        if "aiowsgi.input_sentinel" in environ:
            return app(environ, start_response)
        body = stream.read()
        return [answer(start_response, {"bytes": len(body), "seekable": stream.seekable(),
                                        "sentinel": False})]


    if __name__ == "__main__":
        options = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
        if options.pop("unmarked", False):
            aiowsgi.serve(unmarked, bind="127.0.0.1:0", **options)
        else:
            aiowsgi.serve(aiowsgi.streaming_input(app), bind="127.0.0.1:0", **options)
''')

# ---- helpers: a server subprocess, /proc figures, a raw HTTP/1.1 client ----------------------


@pytest.fixture
def start_app(tmp_path):
    """start_app(**options): the router of APPS_SOURCE in a fresh server; returns it, with
    ``events()`` giving what the apps logged so far."""
    script = tmp_path / "stream_apps.py"
    script.write_text(APPS_SOURCE)
    events_path = tmp_path / "events.jsonl"
    servers = []

    def start(**options):
        srv = Server([sys.executable, str(script), json.dumps(options)], tmp_path,
                     env={"EVENTS": str(events_path)})
        servers.append(srv)

        def events():
            if not events_path.exists():
                return []
            return [json.loads(line) for line in events_path.read_text().splitlines() if line]

        srv.events = events
        return srv

    yield start
    for srv in servers:
        srv.stop()


def wait_for(predicate, timeout=5.0, interval=0.01):
    """Poll ``predicate`` until it returns something true; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Client:
    """A raw HTTP/1.1 client: what is sent is exactly what the test wrote."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        data = self.sock.recv(65536)
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
        for _ in range(1000000):
            if len(self.buf) >= n:
                break
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self):
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    def read_response(self, head_request=False):
        """(status, headers, body) of the next response; skips 1xx answers."""
        for _ in range(10):
            status, headers = self.read_head()
            if status >= 200:
                break
        if head_request or status in (204, 304):
            return status, headers, b""
        if "content-length" in headers:
            return status, headers, self.read_exact(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            for _ in range(1000000):
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    self.read_until(b"\r\n")
                    return status, headers, body
                body += self.read_exact(size)
                self.read_exact(2)
        for _ in range(1000000):
            try:
                self._fill()
            except ConnectionError:
                break
        body, self.buf = self.buf, b""
        return status, headers, body

    def closed_by_server(self, timeout=5.0):
        """True if the server closes the connection (EOF or reset) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            for _ in range(10000):
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def head(method, path, *headers):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: test"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def hello_latency(client):
    t0 = time.perf_counter()
    client.send(head("GET", "/hello"))
    status, _, body = client.read_response()
    elapsed = time.perf_counter() - t0
    assert (status, body) == (200, b"hello")
    return elapsed


def payload(n, seed=0):
    """n deterministic, not-repeating-looking bytes (cheap to make)."""
    block = hashlib.sha256(b"%d" % seed).digest() * 2048  # 64 KiB
    reps = n // len(block) + 1
    return (block * reps)[:n]


# ---- the protocol ---------------------------------------------------------------------------


def test_content_length_body_reaches_the_app_before_it_is_complete(start_app):
    srv = start_app()
    first, rest = payload(30000, 1), payload(50000, 2)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: %d" % (len(first) + len(rest))) + first)
    # the app is called at once and sees the first part while the rest is not even sent
    seen = wait_for(lambda: [e for e in srv.events() if e["kind"] == "data"
                             and e["bytes"] == len(first)])
    assert seen, srv.events()
    c.send(rest)
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["bytes"] == len(first) + len(rest)
    assert result["sha256"] == hashlib.sha256(first + rest).hexdigest()
    assert result["sentinels"] >= 1
    calls = [e for e in srv.events() if e["kind"] == "call"]
    assert calls[0]["content_length"] == str(len(first) + len(rest))
    assert calls[0]["same_sentinel"]


def test_chunked_body_reaches_the_app_decoded_before_it_is_complete(start_app):
    srv = start_app()
    parts = [payload(1000, 3), payload(20000, 4), payload(7, 5)]
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked") + chunk(parts[0]))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "data"
                             and e["bytes"] == len(parts[0])]), srv.events()
    c.send(chunk(parts[1]) + chunk(parts[2]) + b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["bytes"] == sum(map(len, parts))
    assert result["sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_echo_streams_both_ways(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/echo", "Transfer-Encoding: chunked") + chunk(b"ping-1"))
    status, headers = c.read_head()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    # the first piece comes back before the client has sent the rest
    assert c.read_until(b"\r\n") == b"6\r\n"
    assert c.read_exact(8) == b"ping-1\r\n"
    c.send(chunk(b"pong-22") + b"0\r\n\r\n")
    rest = c.read_until(b"0\r\n\r\n")
    assert rest == b"7\r\npong-22\r\n0\r\n\r\n"


def test_large_chunked_upload_is_hashed_right(start_app):
    srv = start_app()
    data = payload(5_000_000, 6)
    c = Client(srv.port)
    framed = b"".join(chunk(data[i:i + 100_000]) for i in range(0, len(data), 100_000))
    c.send(head("PUT", "/hash", "Transfer-Encoding: chunked") + framed + b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200, body
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()


def test_pipelined_requests_after_streamed_bodies_are_answered_in_order(start_app):
    srv = start_app()
    a, b = payload(200_000, 7), payload(3000, 8)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: %d" % len(a)) + a
           + head("GET", "/hello")
           + head("POST", "/hash", "Transfer-Encoding: chunked") + chunk(b) + b"0\r\n\r\n"
           + head("GET", "/hello"))
    first = c.read_response()
    assert first[0] == 200 and json.loads(first[2])["sha256"] == hashlib.sha256(a).hexdigest()
    assert c.read_response()[2] == b"hello"
    third = c.read_response()
    assert third[0] == 200 and json.loads(third[2])["sha256"] == hashlib.sha256(b).hexdigest()
    assert c.read_response()[2] == b"hello"
    # and the connection is still usable
    assert hello_latency(c) < 5


def test_stream_input_option_streams_an_unmarked_app(start_app):
    srv = start_app(unmarked=True, stream_input=True)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 10") + b"01234")
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "data"
                             and e["bytes"] == 5]), srv.events()
    c.send(b"56789")
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"0123456789").hexdigest()


def test_unmarked_app_gets_the_whole_body_and_no_sentinel(start_app):
    srv = start_app(unmarked=True)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 10") + b"01234")
    time.sleep(0.3)
    assert len([e for e in srv.events() if e["kind"] == "call"]) == 0  # not called yet
    c.send(b"56789")
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body) == {"bytes": 10, "seekable": True, "sentinel": False}


def test_read_n_returns_at_most_n_what_is_buffered_and_empty_at_the_end(start_app):
    srv = start_app()
    data = payload(100_000, 9)
    c = Client(srv.port)
    c.send(head("POST", "/read?1000", "Content-Length: %d" % len(data)))
    time.sleep(0.2)  # the app has run and found nothing: BlockingIOError, sentinel
    c.send(data[:50_000])
    time.sleep(0.2)
    c.send(data[50_000:])
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["bytes"] == len(data)
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert 0 < result["biggest"] <= 1000
    assert result["blocked"] >= 1
    assert result["empty_after_end"]


def test_read_without_size_returns_what_is_buffered(start_app):
    srv = start_app()
    data = payload(300_000, 10)
    c = Client(srv.port)
    c.send(head("POST", "/read", "Transfer-Encoding: chunked"))
    for i in range(0, len(data), 60_000):
        c.send(chunk(data[i:i + 60_000]))
        time.sleep(0.05)
    c.send(b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["sha256"] == hashlib.sha256(data).hexdigest()
    assert result["blocked"] >= 1
    assert result["biggest"] < len(data)  # it did not wait for the whole body
    assert result["empty_after_end"]


def test_readline_returns_lines_as_they_arrive(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/readline", "Transfer-Encoding: chunked") + chunk(b"one\ntw"))
    time.sleep(0.2)
    c.send(chunk(b"o\nthree\n") + chunk(b"no newline at the end"))
    time.sleep(0.1)
    c.send(b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    # readline returns what is buffered: a line may come in pieces, never merged across \n
    text = "".join(result["lines"])
    assert text == "one\ntwo\nthree\nno newline at the end"
    for piece in result["lines"][:-1]:
        assert "\n" not in piece[:-1]
    assert "one\n" in result["lines"] and "three\n" in result["lines"]
    assert result["empty_after_end"]


def test_readlines_returns_the_buffered_lines_and_loses_none(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/readlines", "Transfer-Encoding: chunked")
           + chunk(b"line1\nline2\n"))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "call"])
    time.sleep(0.3)
    c.send(chunk(b"line3\n") + b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["text"] == "line1\nline2\nline3\n", result
    assert result["calls"][-1] == 0  # [] at the end of the body


def test_read_with_nothing_buffered_raises_blocking_io_error(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/first-read", "Content-Length: 5"))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "call"])
    time.sleep(0.1)
    c.send(b"abcde")
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert result["first_read"] == "BlockingIOError"
    assert result["bytes"] == 5  # the failed read consumed nothing


def test_sentinel_is_yielded_before_start_response_and_never_sent(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 6") + b"abc")
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "sentinel"]), srv.events()
    c.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        c.sock.recv(100)  # the app has not started its response: nothing is written
    c.sock.settimeout(10)
    c.send(b"def")
    status, headers, body = c.read_response()
    assert status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abcdef").hexdigest()
    assert int(headers["content-length"]) == len(body)


def test_pause_mid_body_app_resumes_others_served_cpu_idle(start_app):
    srv = start_app()
    first, second = payload(40_000, 11), payload(40_000, 12)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked") + chunk(first))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "sentinel"
                             and e["bytes"] == len(first)]), srv.events()
    other = Client(srv.port)
    cpu0, t0 = srv.cpu_seconds(), time.monotonic()
    latencies = []
    while time.monotonic() - t0 < 1.0 and len(latencies) < 20:
        latencies.append(hello_latency(other))
        time.sleep(0.1)
    # a second of pause with nothing else to do: the loop sleeps in epoll_wait
    cpu_hello = srv.cpu_seconds() - cpu0
    cpu1 = srv.cpu_seconds()
    time.sleep(1.0)
    cpu_idle = srv.cpu_seconds() - cpu1
    c.send(chunk(second) + b"0\r\n\r\n")
    status, _, body = c.read_response()
    result = json.loads(body)
    print("\n[pause] hello during pause: max %.1f ms over %d requests; server CPU over 1 s of "
          "pause with no other client: %.3f s (with hellos: %.3f s)"
          % (max(latencies) * 1000, len(latencies), cpu_idle, cpu_hello))
    assert status == 200
    assert result["sha256"] == hashlib.sha256(first + second).hexdigest()
    assert result["sentinels"] >= 1
    assert max(latencies) < HELLO_LIMIT_S
    assert cpu_idle <= 0.05


def test_expect_100_continue_is_sent_when_the_app_first_reads(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("PUT", "/hash", "Content-Length: 5", "Expect: 100-continue"))
    status, _ = c.read_head()
    assert status == 100
    c.send(b"hello")
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"hello").hexdigest()


def test_expect_100_continue_not_sent_when_the_app_never_reads(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("PUT", "/no-read", "Content-Length: 5", "Expect: 100-continue"))
    status, headers, body = c.read_response()  # read_response would skip a 100: check raw
    assert (status, body) == (200, b"not read")
    assert c.buf == b""
    # the body was never read, so the connection cannot carry another request
    assert headers.get("connection") == "close" or c.closed_by_server()


def test_expect_100_continue_raw_wire_has_no_100_before_a_non_reading_answer(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("PUT", "/no-read", "Content-Length: 5", "Expect: 100-continue"))
    first_line = c.read_until(b"\r\n")
    assert first_line.startswith(b"HTTP/1.1 200 ")


def test_disconnect_mid_body_raises_client_disconnected_and_closes(start_app):
    srv = start_app()
    hello = Client(srv.port)
    hello_latency(hello)  # the server is warm: later fd counts compare like with like
    fds_before = srv.fd_count()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 100000") + payload(30_000, 13))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "sentinel"]), srv.events()
    c.close()
    errors = wait_for(lambda: [e for e in srv.events() if e["kind"] == "error"])
    assert errors and errors[0]["type"] == "ClientDisconnected", srv.events()
    assert errors[0]["oserror"]  # ClientDisconnected is an OSError
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"]), srv.events()
    assert len([e for e in srv.events() if e["kind"] == "close"]) == 1
    assert wait_for(lambda: srv.fd_count() == fds_before), (srv.fd_count(), fds_before)
    assert hello_latency(hello) < 1  # the server is fine


def test_many_disconnects_mid_body_leak_no_fds(start_app):
    srv = start_app()
    hello = Client(srv.port)
    hello_latency(hello)
    fds_before = srv.fd_count()
    for i in range(30):
        c = Client(srv.port)
        framing = "Transfer-Encoding: chunked" if i % 2 else "Content-Length: 50000"
        body = chunk(b"x" * 1000) if i % 2 else b"x" * 1000
        c.send(head("POST", "/hash", framing) + body)
        c.close()
    closes = wait_for(lambda: len([e for e in srv.events() if e["kind"] == "close"]) == 30)
    assert closes, srv.events()[-5:]
    assert wait_for(lambda: srv.fd_count() == fds_before), (srv.fd_count(), fds_before)
    assert hello_latency(hello) < 1


def test_chunked_body_over_max_body_size_raises_request_too_large_and_413(start_app):
    srv = start_app(max_body_size=100_000)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked"))
    sent = 0
    try:
        for _ in range(20):
            c.send(chunk(b"y" * 10_000))
            sent += 10_000
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = c.read_response()
    assert status == 413, (status, body, srv.stderr()[-2000:])
    assert headers.get("connection") == "close"
    assert c.closed_by_server(timeout=5), "the connection was left open after the 413"
    errors = wait_for(lambda: [e for e in srv.events() if e["kind"] == "error"])
    assert errors and errors[0]["type"] == "RequestTooLarge", srv.events()[-5:]
    assert errors[0]["bytes"] <= 100_000
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])


def test_malformed_chunked_body_mid_stream_is_a_400_and_the_connection_closes(start_app):
    """The app was called at the head; then the body's framing turns out bad (a chunk longer
    than its size). The app's read fails with an OSError, and the client gets 400 and a
    closed connection, as for any malformed request (SPEC 4)."""
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked") + chunk(b"abc"))
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "sentinel"
                             and e["bytes"] == 3]), srv.events()
    c.send(b"5\r\nabcdefgh\r\n0\r\n\r\n")
    status, headers, _ = c.read_response()
    errors = wait_for(lambda: [e for e in srv.events() if e["kind"] == "error"])
    assert errors and errors[0]["oserror"], srv.events()
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])
    assert c.closed_by_server(timeout=5), "the connection was left open after the answer"
    assert (status, headers.get("connection")) == (400, "close")


def test_content_length_over_max_body_size_gets_413_without_calling_the_app(start_app):
    srv = start_app(max_body_size=100_000)
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 100001"))
    status, headers, _ = c.read_response()
    assert status == 413
    assert headers.get("connection") == "close"
    assert not [e for e in srv.events() if e["kind"] == "call"]


def test_body_of_exactly_max_body_size_is_accepted(start_app):
    srv = start_app(max_body_size=100_000)
    c = Client(srv.port)
    data = payload(100_000, 14)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked") + chunk(data) + b"0\r\n\r\n")
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body)["bytes"] == 100_000


def test_requests_without_body_get_an_empty_input_at_its_end(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("GET", "/read?10"))
    status, _, body = c.read_response()
    result = json.loads(body)
    assert status == 200
    assert (result["bytes"], result["blocked"], result["empty_after_end"]) == (0, 0, True)


def test_trailers_and_chunk_extensions_are_accepted(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked")
           + b"3;name=value\r\nabc\r\n" + b"0\r\nX-Checksum: whatever\r\n\r\n"
           + head("GET", "/hello"))
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert c.read_response()[2] == b"hello"


def test_read_ahead_is_bounded_when_the_app_cannot_keep_up(start_app):
    """Back-pressure: /echo sends every chunk back; a client that uploads without reading
    the answer fills the send queue, the app is no longer pulled, the server stops reading,
    and the client's send blocks, instead of the server buffering the upload."""
    srv = start_app()
    rss_before = srv.rss_kb()
    c = Client(srv.port)
    c.send(head("POST", "/echo", "Transfer-Encoding: chunked"))
    c.sock.setblocking(False)
    piece = chunk(payload(65536, 15))
    sent, stalled_since, left = 0, None, memoryview(b"")
    deadline = time.monotonic() + 30
    while sent < 512 * 1024 * 1024 and time.monotonic() < deadline:
        if not left:
            left = memoryview(piece)
        try:
            n = c.sock.send(left)
            left, sent = left[n:], sent + n
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 0.5:
                break
            time.sleep(0.01)
    rss_peak = srv.rss_kb()
    print("\n[back-pressure] the client could send %.1f MB before the server stopped "
          "reading; server RSS %.1f -> %.1f MB" % (sent / 1e6, rss_before / 1024, rss_peak / 1024))
    assert stalled_since is not None, "the server kept reading an upload nobody consumed"
    assert sent < 64 * 1024 * 1024  # socket buffers on both sides, plus bounded queues
    assert not RSS_MEANINGFUL or rss_peak - rss_before < 32 * 1024
    c.sock.setblocking(True)
    c.close()
    # the client left while the app was suspended on a full send queue: close() all the same
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"]), srv.events()
    other = Client(srv.port)
    assert hello_latency(other) < 1


def test_app_error_mid_body_is_a_500_and_the_server_goes_on(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/fail", "Content-Length: 100000") + b"z" * 1000)
    status, headers, _ = c.read_response()
    assert status == 500
    assert "ValueError: the app failed after" in srv.stderr()
    assert headers.get("connection") == "close" or c.closed_by_server()
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "close"])
    assert hello_latency(Client(srv.port)) < 1


def test_write_between_sentinels_sends_progress_as_the_body_arrives(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/write", "Transfer-Encoding: chunked") + chunk(b"a" * 10))
    status, headers = c.read_head()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert c.read_until(b"\r\n") == b"3\r\n" and c.read_exact(5) == b"10\n\r\n"
    c.send(chunk(b"b" * 5) + b"0\r\n\r\n")
    assert c.read_until(b"0\r\n\r\n") == b"3\r\n15\n\r\n8\r\ndone 15\n\r\n0\r\n\r\n"


def test_expect_100_continue_with_a_chunked_body(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked", "Expect: 100-continue"))
    assert c.read_head()[0] == 100
    c.send(chunk(b"after the 100") + b"0\r\n\r\n")
    status, _, body = c.read_response()
    assert status == 200
    assert json.loads(body)["sha256"] == hashlib.sha256(b"after the 100").hexdigest()


def test_http10_body_streams_and_no_100_continue(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(b"POST /hash HTTP/1.0\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\n")
    time.sleep(0.2)
    c.send(b"abcdef")
    first = c.read_until(b"\r\n")
    assert first.startswith(b"HTTP/1.1 200"), first  # no 100 for an HTTP/1.0 client
    c.buf = first + c.buf
    status, _, body = c.read_response()
    assert json.loads(body)["sha256"] == hashlib.sha256(b"abcdef").hexdigest()


def test_empty_content_length_body_ends_at_once(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 0"))
    status, _, body = c.read_response()
    result = json.loads(body)
    assert (status, result["bytes"], result["sentinels"]) == (200, 0, 0)
    c.send(head("POST", "/hash", "Transfer-Encoding: chunked") + b"0\r\n\r\n")
    status, _, body = c.read_response()
    assert (status, json.loads(body)["bytes"]) == (200, 0)


def test_concurrent_interleaved_uploads_each_get_their_own_body(start_app):
    srv = start_app()
    clients = [Client(srv.port) for _ in range(8)]
    bodies = [payload(150_000 + 1000 * i, 100 + i) for i in range(8)]
    for i, c in enumerate(clients):
        framing = ("Transfer-Encoding: chunked" if i % 2
                   else "Content-Length: %d" % len(bodies[i]))
        c.send(head("PUT", "/hash", framing))
    step = 7_000
    for off in range(0, max(map(len, bodies)), step):
        for i, c in enumerate(clients):
            piece = bodies[i][off:off + step]
            if piece:
                c.send(chunk(piece) if i % 2 else piece)
    for i, c in enumerate(clients):
        if i % 2:
            c.send(b"0\r\n\r\n")
    for i, c in enumerate(clients):
        status, _, body = c.read_response()
        result = json.loads(body)
        assert status == 200
        assert (result["bytes"], result["sha256"]) == (len(bodies[i]),
                                                      hashlib.sha256(bodies[i]).hexdigest())


def test_graceful_stop_lets_a_paused_upload_finish(start_app):
    srv = start_app()
    c = Client(srv.port)
    c.send(head("POST", "/hash", "Content-Length: 10") + b"01234")
    assert wait_for(lambda: [e for e in srv.events() if e["kind"] == "sentinel"
                             and e["bytes"] == 5]), srv.events()
    srv.proc.send_signal(signal.SIGTERM)  # graceful: in-flight requests finish
    time.sleep(0.3)
    assert srv.proc.poll() is None
    c.send(b"56789")
    status, headers, body = c.read_response()
    assert status == 200 and headers.get("connection") == "close"
    assert json.loads(body)["sha256"] == hashlib.sha256(b"0123456789").hexdigest()
    assert srv.proc.wait(10) == 0


# ---- the example and the documentation, run as a user would ---------------------------------


def curl_upload(port, path, chunked):
    """Upload ``path`` with curl (streamed from the file, as users do); returns the JSON."""
    argv = ["curl", "-s", "-S", "--max-time", "60", "-T", str(path)]
    if chunked:
        argv += ["-H", "Transfer-Encoding: chunked"]
    out = subprocess.run(argv + ["http://127.0.0.1:%d/" % port], capture_output=True,
                         timeout=90, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_upload_hash_example_with_curl(tmp_path):
    data = payload(3_000_000, 16)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    srv = Server([sys.executable, str(ROOT / "examples" / "upload_hash.py"), "0"], tmp_path)
    try:
        expected = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert curl_upload(srv.port, upload, chunked=False) == expected
        assert curl_upload(srv.port, upload, chunked=True) == expected
        c = Client(srv.port)
        c.send(head("GET", "/"))
        status, _, body = c.read_response()
        assert status == 200 and b"curl -T" in body
    finally:
        srv.stop()
    assert srv.proc.returncode == 0  # SIGTERM: a clean, graceful stop


def test_upload_hash_example_through_the_command_line(tmp_path):
    """``aiowsgi --chdir examples upload_hash:app``, as its docstring says: the app's own
    mark makes it stream; --max-body-size lifts the 1 GiB default."""
    srv = Server([sys.executable, "-m", "aiowsgi", "--chdir", str(ROOT / "examples"),
                  "--bind", "127.0.0.1:0", "--max-body-size", str(1 << 40), "upload_hash:app"],
                 tmp_path)
    try:
        data = payload(1_500_000, 19)
        c = Client(srv.port)
        c.send(head("PUT", "/", "Transfer-Encoding: chunked") + chunk(data[:1000]))
        time.sleep(0.2)
        c.send(chunk(data[1000:]) + b"0\r\n\r\n")
        status, _, body = c.read_response()
    finally:
        srv.stop()
    assert status == 200
    assert json.loads(body) == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def test_upload_hash_example_under_a_server_without_streaming_input(tmp_path):
    """The example is a plain WSGI app too: wsgiref gives it a complete, blocking input."""
    runner = tmp_path / "wsgiref_runner.py"
    runner.write_text(textwrap.dedent('''
        import sys
        from wsgiref.simple_server import make_server, WSGIRequestHandler
        sys.path.insert(0, sys.argv[1])
        from upload_hash import app

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        httpd = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        print("Listening on http://127.0.0.1:%d" % httpd.server_port, flush=True)
        httpd.serve_forever()
    '''))
    srv = Server([sys.executable, str(runner), str(ROOT / "examples")], tmp_path)
    try:
        data = payload(500_000, 17)
        c = Client(srv.port)
        c.send(head("POST", "/", "Content-Length: %d" % len(data), "Connection: close") + data)
        status, _, body = c.read_response()
    finally:
        srv.stop()
    assert status == 200
    assert json.loads(body) == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


# ---- the headline: a huge upload in constant memory, others served meanwhile -------

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


@pytest.mark.timeout(900)
def test_huge_chunked_upload_constant_memory_and_others_served(tmp_path):
    total = UPLOAD_MB * 1024 * 1024
    srv = Server([sys.executable, str(ROOT / "examples" / "upload_hash.py"), "0"], tmp_path)
    try:
        hello = Client(srv.port)
        # warm up: the first answer imports nothing new, the loop is in steady state
        for _ in range(3):
            hello.send(head("GET", "/"))
            hello.read_response()
        rss_start = srv.rss_kb()
        uploader_py = tmp_path / "uploader.py"
        uploader_py.write_text(UPLOADER)
        out = open(tmp_path / "uploader.out", "w+")
        up = subprocess.Popen([sys.executable, str(uploader_py), str(srv.port), str(total)],
                              stdout=out, stderr=subprocess.STDOUT)
        latencies, rss_peak = [], rss_start
        deadline = time.monotonic() + 800
        # wait until the uploader has hashed its data and connected
        while (up.poll() is None and time.monotonic() < deadline
               and not (tmp_path / "uploader.out").read_text().startswith("start")):
            time.sleep(0.05)
        next_hello = time.monotonic()
        while up.poll() is None and time.monotonic() < deadline:
            rss_peak = max(rss_peak, srv.rss_kb())
            if time.monotonic() >= next_hello:
                t0 = time.perf_counter()
                hello.send(head("GET", "/"))
                status, _, _ = hello.read_response()
                latencies.append(time.perf_counter() - t0)
                assert status == 200
                next_hello = time.monotonic() + 0.05
            time.sleep(0.01)
        if up.poll() is None:
            up.kill()
            pytest.fail("the upload did not finish in time")
        rss_peak = max(rss_peak, srv.rss_kb())
        out.seek(0)
        report = json.loads(out.read().strip().splitlines()[-1])
        out.close()
    finally:
        srv.stop()
    body = report["answer"].split("\r\n\r\n", 1)[1]
    result = json.loads(body)
    latencies.sort()
    print("\n[upload] %d MiB chunked upload to examples/upload_hash.py: %.1f s (%.0f MB/s); "
          "server RSS %.1f MB at start, %.1f MB peak; %d hello requests during the upload: "
          "median %.2f ms, p99 %.2f ms, max %.2f ms"
          % (UPLOAD_MB, report["seconds"], total / report["seconds"] / 1e6, rss_start / 1024,
             rss_peak / 1024, len(latencies), latencies[len(latencies) // 2] * 1000,
             latencies[int(len(latencies) * 0.99)] * 1000, latencies[-1] * 1000))
    assert result == {"sha256": report["expected"], "bytes": total}
    assert not RSS_MEANINGFUL or rss_peak < RSS_LIMIT_KB
    assert len(latencies) >= 3
    assert latencies[-1] < HELLO_LIMIT_S
