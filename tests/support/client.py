"""The one HTTP client of the tests: HTTP/1.x over a real socket, written and parsed here.

What goes on the wire is exactly what the test wrote (``build_request``, ``chunked``; nothing is
added behind its back), and responses are parsed from the bytes received: the status line,
headers in order, and the body by its framing (Content-Length, chunked, close-delimited or
none), recording which framing it was and whether the body was complete.  Pipelined
responses are read one after the other from one buffer.

An address is ``(host, port)``, ``"HOST:PORT"``, ``"[V6]:PORT"`` or ``"unix:PATH"`` (what a
server harness reports).  Every read has a time limit (``IO_TIMEOUT``, scaled).
"""

import json
import socket
import struct
import time

from tests.support.waits import scaled

IO_TIMEOUT = 10.0
MAX_BODY = 1 << 30  # a response body larger than this is a runaway: fail, do not loop on


class ConnectionClosed(ConnectionError):
    """The server closed the connection where a response (or the rest of a head) was due."""


def split_address(address):
    """``"127.0.0.1:80"`` -> ``("127.0.0.1", 80)``, ``"[::1]:80"`` -> ``("::1", 80)``,
    ``"unix:/p"`` -> ``"/p"``; a ``(host, port)`` tuple is returned as it is."""
    if isinstance(address, tuple):
        return address
    if address.startswith("unix:"):
        return address[len("unix:"):]
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def connect(address, timeout=IO_TIMEOUT, rcvbuf=None, source=None):
    """A connected socket (TCP with Nagle off, or unix), reads limited to ``timeout``.
    ``rcvbuf`` shrinks the receive buffer (a slow reader); ``source`` is the local IP address
    to connect from (e.g. ``127.0.0.2``)."""
    target = split_address(address)
    if isinstance(target, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_INET6 if ":" in target[0] else socket.AF_INET,
                             socket.SOCK_STREAM)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            sock.bind((source, 0))
        sock.settimeout(scaled(timeout))
        sock.connect(target)
        if not isinstance(target, str):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


# ---------------------------------------------------------------------------------------------
# Requests as bytes
# ---------------------------------------------------------------------------------------------

def build_request(method="GET", target="/", headers=(), body=b"", version="HTTP/1.1", host=True):
    """Bytes of one request.  ``headers`` is a list of (name, value), str or bytes; a ``Host``
    header comes first when ``host`` is true and none is given.  ``Content-Length`` is NOT
    added: raw tests need full control (``RawClient.request`` adds it)."""
    lines = [("%s %s %s" % (method, target, version)).encode("latin-1")]
    names = {(n.decode("latin-1") if isinstance(n, bytes) else n).lower() for n, _ in headers}
    if host and "host" not in names:
        lines.append(b"Host: localhost")
    for name, value in headers:
        name = name if isinstance(name, bytes) else name.encode("latin-1")
        value = value if isinstance(value, bytes) else str(value).encode("latin-1")
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunk(data, extension=b""):
    """One chunk of a chunked body (never the last one: give it data)."""
    return b"%x%s\r\n%s\r\n" % (len(data), extension, data)


LAST_CHUNK = b"0\r\n\r\n"


def chunked(*parts, trailers=(), extension=b""):
    """A whole chunked body: ``parts`` (empty ones skipped, a zero-size chunk would end the
    body), the last chunk, then ``trailers`` (a list of (name, value))."""
    out = b"".join(chunk(part, extension) for part in parts if part) + b"0\r\n"
    for name, value in trailers:
        out += ("%s: %s\r\n" % (name, value)).encode("latin-1")
    return out + b"\r\n"


# ---------------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------------

class Response:
    """One parsed response.  ``framing``: "length", "chunked", "close" or "none";
    ``complete`` is False when the connection ended before the framing said the body ended;
    ``interim`` holds the 1xx responses read before it."""

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
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("latin-1")

    def __repr__(self):
        return "<Response %s %s %s %r framing=%s complete=%s body=%r>" % (
            self.version, self.status, self.reason, self.headers, self.framing, self.complete,
            self.body[:200])


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------

class RawClient:
    """One connection with an input buffer (``buf``).  ``eof`` and ``reset`` tell how the
    server ended the stream, once it has."""

    def __init__(self, address, timeout=IO_TIMEOUT, rcvbuf=None, source=None):
        self.sock = connect(address, timeout, rcvbuf, source)
        self.buf = bytearray()
        self.eof = False
        self.reset = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def abort(self):
        """Close with a reset (RST) instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # -- sending ------------------------------------------------------------------------------

    def send(self, data, may_be_cut=False):
        """Send all of ``data``.  With ``may_be_cut``, a server that answers and closes before
        taking it all is not an error: returns False then."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not may_be_cut:
                raise
            return False
        return True

    def request(self, method="GET", target="/", headers=(), body=b"", version="HTTP/1.1",
                content_length=None):
        """Send one request; ``Content-Length`` is added when there is a body (or given)."""
        headers = list(headers)
        if content_length is None and body:
            content_length = len(body)
        if content_length is not None:
            headers.append(("Content-Length", str(content_length)))
        self.send(build_request(method, target, headers, body, version))

    def send_slowly(self, data, step=1, delay=0.002):
        """Send ``data`` ``step`` bytes per write (Nagle is off: mostly one segment each)."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            if delay:
                time.sleep(delay)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, size=65536):
        """One read of at most ``size`` bytes into the buffer; 0 at the end of the stream."""
        if self.eof:
            return 0
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            data = b""
            self.reset = True
        if not data:
            self.eof = True
        self.buf += data
        return len(data)

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
            if not self.receive():
                return None

    def read_exact(self, n):
        """``n`` bytes, or fewer if the stream ended first."""
        while len(self.buf) < n:
            if not self.receive(max(65536, min(n - len(self.buf), 1 << 20))):
                break
        return self._take(n)

    def read_to_eof(self, limit=MAX_BODY):
        while self.receive(1 << 20):
            if len(self.buf) > limit:
                raise AssertionError("more than %d bytes before the end of the stream" % limit)
        return self._take(len(self.buf))

    def read_head(self):
        """The next response head, parsed (its body is left unread); None if the stream
        ended cleanly before any byte of it."""
        raw = self.read_until(b"\r\n\r\n")
        if raw is None:
            if self.buf:
                raise ConnectionClosed("stream ended inside a response head: %r"
                                       % bytes(self.buf))
            return None
        lines = raw[:-4].split(b"\r\n")
        status_line = lines[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/"), "bad status line %r" % status_line
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, "bad header line %r" % line
            assert name == name.strip() and name, "bad header name %r" % line
            headers.append((name, value.strip(" \t")))
        return Response(parts[0], int(parts[1]), reason, headers, raw)

    def read_response(self, method="GET", interim=False):
        """The next complete response.  1xx responses are skipped (kept in ``.interim``)
        unless ``interim`` is true.  Raises ConnectionClosed if the connection ends before
        any byte of a response."""
        skipped = []
        while True:
            resp = self.read_head()
            if resp is None:
                raise ConnectionClosed("connection closed before a response (reset=%s)"
                                       % self.reset)
            if 100 <= resp.status < 200 and not interim:
                skipped.append(resp)
                continue
            resp.interim = skipped
            break
        if method == "HEAD" or 100 <= resp.status < 200 or resp.status in (204, 304):
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

    def read_chunk(self, trailers=None):
        """The next chunk of a chunked body: ``(size, data)``, where ``data`` is shorter than
        ``size`` if the stream ended inside it; ``(0, b"")`` for the last chunk (its trailers
        are consumed, and appended to ``trailers`` if given); None if the stream ended
        before a chunk-size line."""
        line = self.read_until(b"\r\n")
        if line is None:
            return None
        size = int(line[:-2].split(b";")[0].strip(), 16)
        if size == 0:
            while True:
                trailer = self.read_until(b"\r\n")
                if trailer is None:
                    return None
                if trailer == b"\r\n":
                    return 0, b""
                if trailers is not None:
                    name, _, value = trailer[:-2].decode("latin-1").partition(":")
                    trailers.append((name, value.strip()))
        data = self.read_exact(size + 2)
        if len(data) < size + 2:
            return size, data[:size]
        assert data[-2:] == b"\r\n", "chunk not followed by CRLF: %r" % data[-10:]
        return size, data[:-2]

    def _read_chunked(self, resp):
        body = bytearray()
        while True:
            if len(body) > MAX_BODY:
                raise AssertionError("chunked body longer than %d bytes" % MAX_BODY)
            piece = self.read_chunk(resp.trailers)
            if piece is None:
                resp.complete = False
                break
            size, data = piece
            resp.chunk_sizes.append(size)
            body += data
            if len(data) < size:
                resp.complete = False
                break
            if size == 0:
                break
        resp.body = bytes(body)

    def peer_closed(self, timeout=IO_TIMEOUT):
        """Wait (at most ``timeout``, scaled) for the server to close; True if it did.  Bytes
        arriving meanwhile stay in ``buf``."""
        if self.eof:
            return True
        old = self.sock.gettimeout()
        deadline = time.monotonic() + scaled(timeout)
        try:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.sock.settimeout(left)
                try:
                    self.receive()
                except socket.timeout:
                    return False
            return True
        finally:
            self.sock.settimeout(old)

    def nothing_received(self, wait=0.3):
        """True if no byte arrives, and the connection stays open, for ``wait`` seconds."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            self.receive()
            return False  # data, or the end of the stream
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(old)


def get(address, target="/", headers=(), method="GET", body=b"", version="HTTP/1.1",
        timeout=IO_TIMEOUT, source=None):
    """One request on a new connection (Content-Length added when there is a body)."""
    with RawClient(address, timeout=timeout, source=source) as c:
        c.request(method, target, headers, body, version)
        return c.read_response(method)


def get_json(address, target="/", **kwargs):
    """``get`` that must answer 200 with JSON; returns the decoded body."""
    resp = get(address, target, **kwargs)
    assert resp.status == 200, resp
    return resp.json()


def timed_request(client, target="/hello/"):
    """Seconds for one GET and its 200 response on a kept-alive client."""
    t0 = time.perf_counter()
    client.request("GET", target)
    resp = client.read_response()
    elapsed = time.perf_counter() - t0
    assert resp.status == 200, resp
    return elapsed


def assert_served_promptly(latencies, typical=0.050, worst=1.0):
    """Requests served beside a heavy one were not starved: nine in ten within ``typical``
    seconds and every one within ``worst``.  A loop blocked by the heavy request would take
    seconds; a busy test machine may hold up any single request for tens of milliseconds."""
    assert latencies, "no request was timed"
    ordered = sorted(latencies)
    p90 = ordered[int(len(ordered) * 0.9)]
    assert p90 < scaled(typical) and ordered[-1] < scaled(worst), \
        "latencies: p90 %.1f ms, max %.1f ms over %d requests" % (
            p90 * 1000, ordered[-1] * 1000, len(ordered))


def connection_refused(address):
    """True if connecting to ``address`` is refused right now (nothing listens there).  A
    reset counts: the connection was queued on a listening socket that closed meanwhile."""
    try:
        connect(address, timeout=5).close()
        return False
    except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError):
        return True
    except ConnectionResetError:  # queued as the listener closed: refused from now on, but
        return False              # this attempt does not say so; a wait_for asks again
