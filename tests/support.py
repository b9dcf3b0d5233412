"""Shared helpers for the test suite: real servers in subprocesses, raw HTTP over real sockets.

``ServerProcess`` runs ``tests/serve.py APP --option value ...`` in a subprocess bound to port 0,
waits for its ``LISTENING <host> <port>`` line, and collects its stderr in a file (readable while
it runs).  Apps from ``tests.apps`` append events (``<id> <event>`` lines) to the file named by the
``AIOWSGI_TEST_EVENTS`` environment variable, which ``ServerProcess`` sets, so tests can observe
what happened inside the server process (``close()`` calls, app calls) without mocks.

``RawClient`` speaks HTTP/1.x over a plain socket and parses responses itself (status line,
headers, Content-Length / chunked / close-delimited bodies), recording how the body was framed
and whether it was complete, so tests can check the bytes on the wire.

Every wait here is bounded in time.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

# Memory bounds mean nothing under ASan (freed memory sits in quarantine) or valgrind:
# tools/asan-test.sh sets AIOWSGI_SKIP_RSS_CHECKS=1 and the RSS assertions stand down.
RSS_MEANINGFUL = not os.environ.get("AIOWSGI_SKIP_RSS_CHECKS")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVE = os.path.join(ROOT, "tests", "serve.py")
EVENTS_ENV = "AIOWSGI_TEST_EVENTS"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
IO_TIMEOUT = 10.0
MAX_BODY = 1 << 30  # a response body larger than this is a runaway: fail, do not loop on


def unique_id(prefix="t"):
    """A short id unique to one test, to find its events and requests in a shared server."""
    return "%s%s" % (prefix, uuid.uuid4().hex[:12])


def wait_for(predicate, timeout=IO_TIMEOUT, interval=0.02):
    """Poll ``predicate()`` until it returns a true value (returned) or ``timeout`` passes
    (None)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def _option_args(options):
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            args.extend([flag, str(value)])
    return args


class ServerDied(AssertionError):
    pass


class ServerProcess:
    """One server subprocess: ``ServerProcess("tests.apps:hello", keepalive=1).start()``.

    Several app specs serve several ``aiowsgi.Server`` objects in one process (one thread each);
    ``listening`` then holds one ``(host, port)`` per server, in order (``("unix", path)`` for a
    unix socket).
    """

    def __init__(self, *apps, env=None, **options):
        if not apps:
            raise ValueError("at least one app spec")
        self.apps = apps
        self.options = options
        self.dir = tempfile.mkdtemp(prefix="aiowsgi-test-")
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.events_path = os.path.join(self.dir, "events")
        open(self.events_path, "w").close()
        self.env = dict(os.environ)
        self.env[EVENTS_ENV] = self.events_path
        self.env["PYTHONPATH"] = ROOT + os.pathsep + self.env.get("PYTHONPATH", "")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env["PYTHONFAULTHANDLER"] = "1"
        if env:
            self.env.update(env)
        self.proc = None
        self.listening = []
        self.returncode = None

    # -- life cycle -------------------------------------------------------------------------

    @property
    def argv(self):
        return [sys.executable, SERVE] + list(self.apps) + _option_args(self.options)

    def start(self, timeout=START_TIMEOUT):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, cwd=ROOT, env=self.env)
        deadline = time.monotonic() + timeout
        while True:
            lines = [line.split() for line in self.stdout().splitlines()]
            self.listening = [(parts[1], int(parts[2]) if parts[2].isdigit() else parts[2])
                              for parts in lines if len(parts) == 3 and parts[0] == "LISTENING"]
            if len(self.listening) >= len(self.apps):
                return self
            if self.proc.poll() is not None:
                raise ServerDied("server %s exited with %s before listening; stderr:\n%s"
                                 % (self.apps, self.proc.returncode, self.stderr()))
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerDied("server %s not listening after %ss; stderr:\n%s"
                                 % (self.apps, timeout, self.stderr()))
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        """Raise ``ServerDied`` (with the stderr tail) if the process has exited."""
        if not self.alive():
            raise ServerDied("server %s died (exit status %s); stderr:\n%s"
                             % (self.apps, self.proc.returncode, self.stderr()[-6000:]))

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait (bounded), SIGKILL if needed; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()

    # -- where it listens ---------------------------------------------------------------------

    @property
    def host(self):
        return self.listening[0][0]

    @property
    def port(self):
        return self.listening[0][1]

    @property
    def pid(self):
        return self.proc.pid

    def url(self, path="/", index=0):
        host, port = self.listening[index]
        return "http://%s:%d%s" % (host, port, path)

    def client(self, index=0, timeout=IO_TIMEOUT):
        host, port = self.listening[index]
        return RawClient(host, port, timeout=timeout)

    # -- what it said and did -----------------------------------------------------------------

    def stdout(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_stderr(self, text, timeout=IO_TIMEOUT):
        """Wait until ``text`` appears in stderr; returns the stderr (or None on timeout)."""
        return wait_for(lambda: text in self.stderr() and self.stderr(), timeout)

    def events(self, ident=None):
        """Events the apps recorded, as lists of words; only those of ``ident`` if given
        (then without the id)."""
        with open(self.events_path, "r", encoding="utf-8") as f:
            rows = [line.split() for line in f.read().splitlines() if line.strip()]
        if ident is None:
            return rows
        return [row[1:] for row in rows if row and row[0] == ident]

    def wait_event(self, ident, event, count=1, timeout=IO_TIMEOUT):
        """Wait until ``ident`` has recorded ``event`` (its first word) ``count`` times."""
        return wait_for(lambda: sum(1 for row in self.events(ident) if row[:1] == [event]) >= count,
                        timeout)

    # -- process resources --------------------------------------------------------------------

    def rss_kib(self):
        return proc_status_kib(self.pid, "VmRSS")

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


# ---------------------------------------------------------------------------------------------
# Raw HTTP/1.x over a socket
# ---------------------------------------------------------------------------------------------

def build_request(method="GET", target="/", headers=(), body=b"", version="HTTP/1.1", host=True):
    """Bytes of one request.  ``headers`` is a list of (name, value) (str or bytes); a ``Host``
    header is added first when ``host`` is true and none is given; ``Content-Length`` is NOT
    added: pass it yourself (raw tests need full control)."""
    lines = [("%s %s %s" % (method, target, version)).encode("latin-1")]
    names = {(n.decode("latin-1") if isinstance(n, bytes) else n).lower() for n, _ in headers}
    if host and "host" not in names:
        lines.append(b"Host: localhost")
    for name, value in headers:
        name = name if isinstance(name, bytes) else name.encode("latin-1")
        value = value if isinstance(value, bytes) else str(value).encode("latin-1")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(*parts, trailers=(), extension=b""):
    """A chunked body of ``parts`` (bytes; empty ones are skipped, a zero-size chunk would end
    the body), then the last chunk and ``trailers``."""
    out = b""
    for part in parts:
        if part:
            out += b"%x%s\r\n%s\r\n" % (len(part), extension, part)
    out += b"0\r\n"
    for name, value in trailers:
        out += ("%s: %s\r\n" % (name, value)).encode("latin-1")
    return out + b"\r\n"


class IncompleteResponse(AssertionError):
    pass


class Response:
    """One parsed HTTP response.

    ``framing`` is how the body was delimited: "length", "chunked", "close" or "none".
    ``complete`` is False when the connection ended before the framing said the body ended.
    """

    def __init__(self, version, status, reason, headers, raw_head):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.framing = "none"
        self.complete = True
        self.trailers = []
        self.chunk_sizes = []
        self.interim = []

    def header(self, name, default=None):
        """The value of header ``name``; fails if it was sent more than once."""
        values = self.header_list(name)
        if not values:
            return default
        assert len(values) == 1, "header %s sent %d times: %r" % (name, len(values), values)
        return values[0]

    def header_list(self, name):
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    def has_header(self, name):
        return bool(self.header_list(name))

    def connection_tokens(self):
        return {t.strip().lower() for v in self.header_list("Connection") for t in v.split(",")}

    def json(self):
        import json
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("latin-1")

    def __repr__(self):
        return "<Response %s %s %s %r framing=%s complete=%s body=%r>" % (
            self.version, self.status, self.reason, self.headers, self.framing, self.complete,
            self.body[:200])


class RawClient:
    """A blocking socket with an input buffer; every read has a timeout (``IO_TIMEOUT``)."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    # -- sending ------------------------------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=(), body=b"", version="HTTP/1.1",
                content_length=None):
        """Send one request; ``Content-Length`` is added when there is a body (or when given)."""
        headers = list(headers)
        if content_length is None and body:
            content_length = len(body)
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        self.send(build_request(method, target, headers, body, version))

    def send_slowly(self, data, step=1, delay=0.002):
        """Send ``data`` ``step`` bytes per write (Nagle is off, so mostly one segment each)."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            if delay:
                time.sleep(delay)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- receiving ----------------------------------------------------------------------------

    def _fill(self, size=65536):
        """Read once into the buffer; False at end of stream (EOF or reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
            self.reset = True
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_until(self, marker, limit=1 << 20):
        """Bytes up to and including ``marker``; None if the stream ended first."""
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                return self._take(i + len(marker))
            if len(self.buf) > limit:
                raise AssertionError("no %r in the first %d bytes: %r"
                                     % (marker, limit, bytes(self.buf[:300])))
            start = max(0, len(self.buf) - len(marker) + 1)
            if not self._fill():
                return None

    def read_exact(self, n):
        """``n`` bytes, or fewer if the stream ended first."""
        while len(self.buf) < n:
            if not self._fill(max(65536, n - len(self.buf))):
                break
        return self._take(n)

    def read_to_eof(self, limit=MAX_BODY):
        while self._fill():
            if len(self.buf) > limit:
                raise AssertionError("more than %d bytes before the end of the stream" % limit)
        return self._take(len(self.buf))

    def read_head(self):
        """The next response head, parsed (no body read); None if the stream ended cleanly
        before any byte of it."""
        raw = self.read_until(b"\r\n\r\n")
        if raw is None:
            if self.buf:
                raise IncompleteResponse("stream ended inside a response head: %r"
                                         % bytes(self.buf))
            return None
        lines = raw[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), "bad status line %r" % status_line
        version, status = parts[0], int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, "bad header line %r" % line
            assert name == name.strip() and name, "bad header name %r" % line
            headers.append((name, value.strip(" \t")))
        return Response(version, status, reason, headers, raw)

    def read_response(self, method="GET", interim=False):
        """The next complete response (1xx interim responses are skipped and kept in
        ``.interim`` unless ``interim`` is true).  Raises IncompleteResponse if the connection
        ends before any byte of a response."""
        skipped = []
        while True:
            resp = self.read_head()
            if resp is None:
                raise IncompleteResponse("connection closed before a response (reset=%s)"
                                         % self.reset)
            if 100 <= resp.status < 200 and not interim:
                skipped.append(resp)
                continue
            resp.interim = skipped
            break
        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
            resp.framing = "none"
            return resp
        te = ",".join(resp.header_list("Transfer-Encoding")).lower()
        if te:
            assert te.replace(" ", "") == "chunked", "unexpected Transfer-Encoding %r" % te
            resp.framing = "chunked"
            self._read_chunked(resp)
        elif resp.has_header("Content-Length"):
            resp.framing = "length"
            length = int(resp.header("Content-Length"))
            resp.body = self.read_exact(length)
            resp.complete = len(resp.body) == length
        else:
            resp.framing = "close"
            resp.body = self.read_to_eof()
        return resp

    def _read_chunked(self, resp):
        body = bytearray()
        while True:
            if len(body) > MAX_BODY:
                raise AssertionError("chunked body longer than %d bytes" % MAX_BODY)
            line = self.read_until(b"\r\n")
            if line is None:
                resp.complete = False
                break
            size = int(line[:-2].split(b";")[0].strip(), 16)
            resp.chunk_sizes.append(size)
            if size == 0:
                while True:
                    trailer = self.read_until(b"\r\n")
                    if trailer is None:
                        resp.complete = False
                        break
                    if trailer == b"\r\n":
                        break
                    name, _, value = trailer[:-2].decode("latin-1").partition(":")
                    resp.trailers.append((name, value.strip()))
                break
            data = self.read_exact(size + 2)
            if len(data) < size + 2:
                body += data[:size]
                resp.complete = False
                break
            assert data[-2:] == b"\r\n", "chunk not followed by CRLF: %r" % data[-10:]
            body += data[:-2]
        resp.body = bytes(body)

    def peer_closed(self, timeout=IO_TIMEOUT):
        """Wait (at most ``timeout``) for the server to close; True if it did.  Bytes that arrive
        meanwhile are kept in the buffer (look at ``.buf``)."""
        if self.eof:
            return True
        old = self.sock.gettimeout()
        deadline = time.monotonic() + timeout
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    self._fill()
                except socket.timeout:
                    return False
            return True
        finally:
            self.sock.settimeout(old)

    def nothing_received(self, wait=0.3):
        """True if no byte arrives (and the connection stays open) for ``wait`` seconds."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            self._fill()
            return False  # data or end of stream
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(old)


def one_request(port, data, method="GET", host="127.0.0.1", timeout=IO_TIMEOUT):
    """Open a connection, send ``data`` (raw bytes), read one response, close."""
    with RawClient(host, port, timeout=timeout) as c:
        c.send(data)
        return c.read_response(method)


def get(port, target="/", headers=(), version="HTTP/1.1", method="GET", body=b"",
        host="127.0.0.1"):
    """One request on a fresh connection (Content-Length added when there is a body)."""
    with RawClient(host, port) as c:
        c.request(method, target, headers, body, version)
        return c.read_response(method)
