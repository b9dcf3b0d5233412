"""No leaks: connections, spooled bodies and thousands of requests give back every descriptor
and the memory they took; and the leak soak, behind the ``soak`` marker.

The soak sends many requests of every kind to one server process, which must end with the
memory and the descriptors it had after warm-up: one-item and two-item lists, a generator,
write(), wsgi.file_wrapper over a real file (sendfile) and over BytesIO, exceptions before and
after the headers, a client leaving in the middle of a 1 MiB response, pipelined requests,
chunked and Content-Length uploads (spooled to a temporary file), HEAD, a malformed request
(400), static files (--static: 200, 206, 301, 304, 403, 404, a precompressed sibling, a
client leaving mid-file); and the streaming-input protocol on a second server.  Under a debug CPython
(sys.gettotalrefcount; tools/refcount-soak.sh) the total reference count must not drift either.
The count: 100,000 requests on the buffered server (20,000 of warm-up, then
AIOWSGI_SOAK_REQUESTS=80,000 measured) and half as many on the streaming one.
tools/sanitizer-test.sh, tools/valgrind.sh and tools/refcount-soak.sh run the soak with fewer.
"""

import os
import time
from urllib.parse import quote

import pytest

from tests.support.client import build_request, chunked
from tests.support.server import ROUTER, RSS_MEANINGFUL
from tests.support.waits import scaled, wait_for

# requests after warm-up on the buffered server; the streaming server gets half as many
SOAK_REQUESTS = int(os.environ.get("AIOWSGI_SOAK_REQUESTS", "80000"))


def test_closed_connections_release_their_file_descriptors(server):
    with server.client() as c:  # warm up (lazy allocations)
        c.request("GET", "/hello/")
        c.read_response()
    time.sleep(0.2)
    baseline = server.open_fds()
    for _ in range(100):
        with server.client() as c:
            c.request("GET", "/hello/")
            assert c.read_response().status == 200
    for _ in range(50):  # closed by the client before any request, and mid-request
        with server.client() as c:
            c.send(b"GET /hel")
    # the listening socket, stdio and one or two internal fds stay; connections must go
    assert wait_for(lambda: server.open_fds() <= baseline + 1), (baseline, server.open_fds())


def test_no_memory_or_descriptor_leak_over_thousands_of_requests(start):
    srv = start.apps(ROUTER)
    body = os.urandom(50000)
    batch = (build_request("GET", "/environ/leak?x=1", [("X-A", "a" * 100)]) * 20
             + build_request("POST", "/echo/", [("Content-Length", str(len(body)))], body) * 5
             + build_request("GET", "/scripted/?kind=gen&part=a&part=b") * 5)

    def run(batches):
        with srv.client() as c:
            for i in range(batches):
                c.send(batch)
                for _ in range(30):
                    assert c.read_response().status == 200
                if i % 10 == 0:  # an app error (the server may close after a 500)
                    assert srv.get("/raise_before_headers/").status == 500

    run(40)  # warm up: caches, pools, allocator arenas
    rss, fds = srv.rss_kib(), srv.open_fds()
    run(150)  # 4500 requests, 750 bodies of 50 KB (37 MB if they leaked)
    grown = srv.rss_kib() - rss
    assert not RSS_MEANINGFUL or grown < 8 * 1024, "RSS grew by %d KiB over 4500 requests" % grown
    assert wait_for(lambda: srv.open_fds() <= fds, timeout=5), (fds, srv.open_fds())


def test_spooled_bodies_release_their_temporary_files(start):
    srv = start.apps(ROUTER, spool_threshold=1024)
    srv.get("/echo/", method="POST", body=b"w" * 2000)
    fds = srv.open_fds()
    body = b"s" * 100000
    with srv.client() as c:
        for _ in range(30):
            c.request("POST", "/echo/", body=body)
            assert c.read_response().json()["input_is_file"] is True
        c.request("POST", "/ignore_body/", body=body)  # spooled, never read by the app
        assert c.read_response().status == 200
    assert wait_for(lambda: srv.open_fds() <= fds, timeout=5), (fds, srv.open_fds())
    targets = srv.fd_targets().values()
    assert not [t for t in targets if "(deleted)" in t], targets


# -- the soak ---------------------------------------------------------------------------------

CHUNKED_PARTS = [b"u" * n for n in (1, 100, 4000, 16000, 333)]


class Mix:
    """Sends the mix; keep-alive kinds share one connection, the others open their own."""

    def __init__(self, srv, files, streaming):
        self.srv, self.files, self.streaming = srv, files, streaming
        self.client = None
        self.done = 0

    def keepalive(self):
        if self.client is None:
            self.client = self.srv.client()
        return self.client

    def reset(self):
        if self.client is not None:
            self.client.close()
            self.client = None

    def expect(self, requests, status=200, body=None, method="GET"):
        c = self.keepalive()
        c.send(b"".join(requests))
        for _ in requests:
            resp = c.read_response(method)
            assert resp.status == status, (requests[0][:60], resp)
            assert body is None or resp.body == body, (requests[0][:60], resp)
        self.done += len(requests)

    def closing(self, request, status):
        """A request after which the server closes the connection."""
        with self.srv.client() as c:
            c.send(request)
            resp = c.read_response()
            assert resp.status == status and c.peer_closed(), (request[:60], resp)
        self.done += 1

    def leave_mid_response(self):
        with self.srv.client() as c:
            c.request("GET", "/stream/?chunks=64&size=16384")
            assert c.read_head().status == 200
            c.read_exact(40000)
            c.abort()
        self.done += 1

    def leave_mid_upload(self):
        with self.srv.client() as c:
            c.send(build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")])
                   + b"100\r\n" + b"g" * 100)
            time.sleep(0.001)
        self.done += 1

    def upload(self, size=None):
        if size is None:
            self.expect([build_request("POST", "/echo/", [("Transfer-Encoding", "chunked")],
                                       chunked(*CHUNKED_PARTS))])
        else:
            self.expect([build_request("POST", "/echo/", [("Content-Length", str(size))],
                                       b"c" * size)])

    def static_files(self, i):
        """The answers of --static (the site of the soak's tmp_path, mounted at /s)."""
        get = build_request
        self.expect([get("GET", "/s/z.bin")], body=b"z" * 100000)
        self.expect([get("HEAD", "/s/y.bin")], method="HEAD")
        self.expect([get("GET", "/s/z.bin", [("Range", "bytes=10-19")])], status=206,
                    body=b"z" * 10)
        self.expect([get("GET", "/s/z.bin", [("If-None-Match", "*")])], status=304)
        self.expect([get("GET", "/s/y.bin", [("Accept-Encoding", "gzip")])], body=b"gz")
        self.expect([get("GET", "/s/nope")], status=404)
        self.expect([get("GET", "/s/%2e%2e/z.bin")], status=403)
        self.expect([get("GET", "/s")], status=301)
        if i % 4 == 0:
            with self.srv.client(rcvbuf=4096) as c:  # leaving in the middle of a file
                c.request("GET", "/s/z.bin")
                assert c.read_head().status == 200
                c.abort()
            self.done += 1

    def one_round(self, i):
        """About 16 requests of every kind; returns when they are all answered."""
        get = build_request
        self.upload()
        self.upload(30000)
        if self.streaming:
            self.expect([get("GET", "/echo/")])
            self.expect([get("GET", "/echo/")] * 3)
            if i % 4 == 0:
                self.leave_mid_upload()
                self.upload(300000)
            return
        self.expect([get("GET", "/hello/")], body=b"Hello, world!\n")
        self.expect([get("GET", "/scripted/?part=two%20&part=items%0A")], body=b"two items\n")
        self.expect([get("GET", "/scripted/?kind=gen&part=a&part=b&part=c&part=d&part=e")])
        self.expect([get("GET", "/scripted/?kind=write&part=written%20&part=twice%0A")],
                    body=b"written twice\n")
        self.expect([get("GET", "/file_wrapper/?path=" + self.files["z"])], body=b"z" * 100000)
        self.expect([get("GET", "/file_wrapper/?kind=bytesio&blksize=4096&path="
                         + self.files["y"])], body=b"y" * 20000)
        self.expect([get("HEAD", "/hello/")], method="HEAD")
        self.expect([get("GET", "/hello/"), get("GET", "/scripted/?kind=gen"),
                     get("GET", "/scripted/?kind=write")])
        self.expect([get("GET", "/raise_before_headers/")], status=500)
        self.reset()  # the server may close after an error answer: start afresh
        self.closing(get("GET", "/raise_in_generator/"), 200)
        self.closing(b"GET / HTTP/1.1\r\nHost: soak\r\nContent-Length: 1\r\nContent-Length: 2"
                     b"\r\n\r\n", 400)
        self.static_files(i)
        if i % 4 == 0:
            self.leave_mid_response()
            self.upload(300000)  # larger than the read buffer can ever grow

    def run(self, n):
        start = self.done
        deadline = time.monotonic() + scaled(120)
        i = 0
        while self.done - start < n and time.monotonic() < deadline:
            self.one_round(i)
            i += 1
        assert self.done - start >= n, "only %d requests in the time limit" % (self.done - start)


def refcount(srv):
    return int(srv.get("/refcount/", headers=[("Connection", "close")]).body)


@pytest.mark.soak
@pytest.mark.parametrize("mode", ["buffered", "streaming"])
def test_soak_every_kind_of_app_leaks_no_memory_fds_or_references(start, tmp_path, mode):
    site = tmp_path / "files"
    site.mkdir()
    files = {"z": site / "z.bin", "y": site / "y.bin"}
    files["z"].write_bytes(b"z" * 100000)
    files["y"].write_bytes(b"y" * 20000)
    (site / "y.bin.gz").write_bytes(b"gz")
    # spool_threshold 16 KiB: the 20 KiB and 30 KiB uploads go through a temporary file; the
    # files are also served at /s (--static)
    srv = start.apps(ROUTER, stream_input=mode == "streaming", keepalive=5,
                     spool_threshold=16384, quiet=True, static="/s=%s" % site)
    mix = Mix(srv, {k: quote(str(v)) for k, v in files.items()}, mode == "streaming")
    count = SOAK_REQUESTS if mode == "buffered" else SOAK_REQUESTS // 2
    t0 = time.monotonic()
    mix.run(max(count // 4, 500))  # warm-up: pools, caches and interned strings fill
    mix.reset()
    base_fds, base_rss, base_refs = srv.open_fds(), srv.rss_kib(), refcount(srv)
    mix.run(count)
    mix.reset()
    wait_for(lambda: srv.open_fds() <= base_fds)  # lingering connections close
    fds, rss, refs = srv.open_fds(), srv.rss_kib(), refcount(srv)
    print("%s: %d requests in %.1f s; RSS %d -> %d KiB; fds %d -> %d; refs %d -> %d"
          % (mode, mix.done, time.monotonic() - t0, base_rss, rss, base_fds, fds,
             base_refs, refs))
    srv.check_alive()
    assert fds <= base_fds, "fds: %d after warm-up, %d at the end" % (base_fds, fds)
    assert not RSS_MEANINGFUL or rss - base_rss < 2048, "RSS grew by %d KiB" % (rss - base_rss)
    if base_refs >= 0:  # a leak of one reference per request would show as thousands
        assert refs - base_refs < 500, "total refcount drifted by %d" % (refs - base_refs)
