"""Leak soak: many requests across every kind of app against one real server process, which
must end with the memory and the descriptors it had after warm-up.

Kinds: one-item list, two-item list, generator, write(), file wrapper over a real file
(sendfile) and over BytesIO, exception before and after the headers, client disconnect in the
middle of a 1 MiB response, pipelined requests, chunked and Content-Length uploads, HEAD, a
malformed request (400), and the streaming-input protocol (second server).

The default count: 100,000 requests on the buffered server (20,000 of warm-up, then
AIOWSGI_SOAK_REQUESTS=80,000 measured) and half as many on the streaming one, about 50 s in
all on a 2-core machine (some 3,000 requests/s from one Python client). Under a debug CPython (sys.gettotalrefcount, e.g. Debian's
python3-dbg with tools/refcount-soak.sh) the total reference count must not drift either.

Deselect with `-m "not soak"` (or `-k "not soak"`).
"""

import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from hardening_support import SLOW, ServerProcess, connect, read_response, read_until_close  # noqa: E402,E501

pytestmark = pytest.mark.soak

# requests after warm-up on the buffered server; the streaming server gets half as many
REQUESTS = int(os.environ.get("AIOWSGI_SOAK_REQUESTS", "80000"))
RSS_GROWTH_KB = 2048

CHUNKED_BODY = b"".join(b"%x\r\n%s\r\n" % (n, b"u" * n) for n in (1, 100, 4000, 16000, 333))
CHUNKED_LEN = 1 + 100 + 4000 + 16000 + 333


def get(path, extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: soak\r\n" + extra + b"\r\n"


class Client:
    """Sends the mix; keep-alive kinds share one connection, the others open their own."""

    def __init__(self, address, streaming):
        self.address = address
        self.streaming = streaming
        self.sock = None
        self.done = 0

    def keepalive(self):
        if self.sock is None:
            self.sock = connect(self.address)
        return self.sock

    def reset(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def expect(self, payload, status=200, body=None, count=1, head=False):
        sock = self.keepalive()
        sock.sendall(payload)
        for _ in range(count):
            got_status, headers, got_body = read_response(sock, head_request=head)
            assert got_status == status, (payload[:60], got_status, got_body[:200])
            if body is not None:
                assert got_body == body, (payload[:60], got_body[:200])
        self.done += count

    def closing(self, payload, expect_prefix):
        with connect(self.address) as sock:
            sock.sendall(payload)
            data, closed = read_until_close(sock)
        assert closed and data.startswith(expect_prefix), (payload[:60], data[:200])
        self.done += 1

    def disconnect_mid_response(self):
        with connect(self.address) as sock:
            sock.sendall(get(b"/big"))
            got = 0
            while got < 40000:
                piece = sock.recv(16384)
                assert piece, "closed early"
                got += len(piece)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.done += 1

    def upload_chunked(self):
        payload = (b"POST /upload HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + CHUNKED_BODY + b"0\r\n\r\n")
        self.expect(payload)

    def upload_length(self):
        body = b"c" * 30000
        self.expect(b"POST /upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 30000\r\n\r\n"
                    + body)

    def one_round(self, i):
        """About 16 requests of every kind; returns when they are all answered."""
        if self.streaming:
            self.upload_chunked()
            self.upload_length()
            self.expect(get(b"/s"), body=b"0 da39a3ee5e6b4b0d3255bfef95601890afd80709\n")
            self.expect(get(b"/p") * 3, count=3)
            if i % 4 == 0:
                self.disconnect_upload()
            return
        self.expect(get(b"/list"), body=b"hello from a list\n")
        self.expect(get(b"/list2"), body=b"two items\n")
        self.expect(get(b"/gen"))
        self.expect(get(b"/write"), body=b"written twice\n")
        self.expect(get(b"/file"), body=b"z" * 100000)
        self.expect(get(b"/filelike"), body=b"y" * 20000)
        self.expect(b"HEAD /list HTTP/1.1\r\nHost: soak\r\n\r\n", head=True)
        self.expect(get(b"/list") + get(b"/gen") + get(b"/write"), count=3)
        self.upload_chunked()
        self.upload_length()
        self.expect(get(b"/exc-before"), status=500)
        self.reset()  # the server may close after an error answer; start afresh
        self.closing(get(b"/exc-after"), b"HTTP/1.1 200 OK")
        self.closing(b"GET / HTTP/1.1\r\nHost: soak\r\nContent-Length: 1\r\nContent-Length: 2"
                     b"\r\n\r\n", b"HTTP/1.1 400")
        if i % 4 == 0:
            self.disconnect_mid_response()

    def disconnect_upload(self):
        """Streaming: the client leaves in the middle of a chunked upload."""
        with connect(self.address) as sock:
            sock.sendall(b"POST /gone HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"100\r\n" + b"g" * 100)
            time.sleep(0.001)
        self.done += 1

    def run(self, n):
        start = self.done
        i = 0
        deadline = time.monotonic() + 120 * SLOW
        while self.done - start < n and time.monotonic() < deadline:
            self.one_round(i)
            i += 1
        assert self.done - start >= n, "only %d requests in the time limit" % (self.done - start)


def settle(server, base_fds, timeout=10.0):
    """Wait (bounded) for lingering connections to close; returns the final fd count."""
    deadline = time.monotonic() + timeout * SLOW
    fds = server.nfds()
    while fds > base_fds and time.monotonic() < deadline:
        time.sleep(0.1)
        fds = server.nfds()
    return fds


def refcount(server):
    with connect(server.address) as sock:
        sock.sendall(get(b"/refcount", b"Connection: close\r\n"))
        data, _ = read_until_close(sock)
    return int(data.rpartition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("mode", ["buffered", "streaming"])
def test_soak_every_kind_of_app_leaks_no_memory_fds_or_references(tmp_path, mode):
    server = ServerProcess(str(tmp_path), stream_input=mode == "streaming", keepalive=5)
    try:
        client = Client(server.address, mode == "streaming")
        count = REQUESTS if mode == "buffered" else REQUESTS // 2
        t0 = time.monotonic()
        client.run(max(count // 4, 500))  # warm-up: pools, caches and interned strings fill
        client.reset()
        base_fds = settle(server, 0, timeout=0)  # measured right after the warm-up
        base_fds = settle(server, base_fds)
        base_rss = server.rss_kb()
        base_refs = refcount(server)
        client.run(count)
        client.reset()
        fds = settle(server, base_fds)
        rss = server.rss_kb()
        refs = refcount(server)
        print("%s: %d requests in %.1f s; RSS %d -> %d KiB; fds %d -> %d; refs %d -> %d"
              % (mode, client.done, time.monotonic() - t0, base_rss, rss, base_fds, fds,
                 base_refs, refs))
        assert server.alive()
        assert fds <= base_fds, "fds: %d after warm-up, %d at the end" % (base_fds, fds)
        assert rss - base_rss < RSS_GROWTH_KB, "RSS grew by %d KiB" % (rss - base_rss)
        if base_refs >= 0:
            # a leak of one reference per request would show as thousands
            assert refs - base_refs < 500, "total refcount drifted by %d" % (refs - base_refs)
    finally:
        server.stop()
