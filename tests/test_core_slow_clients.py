"""Back-pressure (SPEC section 4): the response iterable is pulled only while the send buffer is
below a bound, so a slow reader costs bounded memory and blocks no one else."""

import time
from urllib.parse import quote

from tests.support import RSS_MEANINGFUL  # noqa: E402
from tests.support import RawClient, get, unique_id, wait_for

CHUNK = 65536
CHUNKS_50MB = 800  # 800 x 64 KiB = 50 MiB
RSS_LIMIT_KIB = 100 * 1024


def max_pulled(srv, ident):
    pulled = [int(e[1]) for e in srv.events(ident) if e[0] == "pulled"]
    return max(pulled) if pulled else -1


class ChunkedStreamReader:
    """Reads the chunked body of a /stream/ response incrementally and checks every byte:
    chunk i of the app is CHUNK bytes of value i % 256."""

    def __init__(self, client):
        self.c = client
        self.received = 0
        self.done = False

    def read_some(self):
        """Read one chunk of the HTTP framing; returns the number of body bytes read."""
        line = self.c.read_until(b"\r\n")
        assert line is not None, "stream cut after %d bytes" % self.received
        size = int(line[:-2].split(b";")[0], 16)
        if size == 0:
            assert self.c.read_until(b"\r\n") == b"\r\n"
            self.done = True
            return 0
        data = self.c.read_exact(size + 2)
        assert len(data) == size + 2 and data[-2:] == b"\r\n", "stream cut"
        pos = 0
        while pos < size:  # a wire chunk may span app chunks: check each span
            index, offset = divmod(self.received + pos, CHUNK)
            span = min(size - pos, CHUNK - offset)
            assert data[pos:pos + span] == bytes([index % 256]) * span, \
                "wrong bytes at offset %d" % (self.received + pos)
            pos += span
        self.received += size
        return size


def test_slow_reader_of_50mb_costs_bounded_memory_and_blocks_no_one(server_factory):
    srv = server_factory("tests.apps:router")
    assert get(srv.port, "/hello/").status == 200
    ident = unique_id()
    rss = [srv.rss_kib()]
    with RawClient(srv.host, srv.port, rcvbuf=CHUNK) as slow:
        slow.request("GET", "/stream/?chunks=%d&size=%d&id=%s" % (CHUNKS_50MB, CHUNK, ident))
        head = slow.read_head()
        assert head.status == 200 and head.header("Transfer-Encoding") == "chunked"
        reader = ChunkedStreamReader(slow)
        # Slow phase: about 2.5 MiB over 2 s, while other clients are served.
        for i in range(40):
            reader.read_some()
            time.sleep(0.05)
            if i % 10 == 5:
                other = RawClient(srv.host, srv.port, timeout=5)
                with other:
                    other.request("GET", "/hello/")
                    assert other.read_response().body == b"Hello, world!\n"
                rss.append(srv.rss_kib())
        # The generator must not have run far ahead of what the client took.
        ahead = (max_pulled(srv, ident) + 16) * CHUNK - reader.received
        assert ahead < 32 * 1024 * 1024, "pulled %d bytes ahead of a slow reader" % ahead
        assert max_pulled(srv, ident) < CHUNKS_50MB - 16
        rss.append(srv.rss_kib())
        # Fast phase: the rest, every byte checked.
        for i in range(10 * CHUNKS_50MB):
            if reader.done:
                break
            reader.read_some()
            if i % 100 == 0:
                rss.append(srv.rss_kib())
        assert reader.done
        assert reader.received == CHUNKS_50MB * CHUNK
    assert not RSS_MEANINGFUL or max(rss) < RSS_LIMIT_KIB, "server RSS: %d KiB" % max(rss)
    assert srv.wait_event(ident, "close")
    assert [e[0] for e in srv.events(ident)].count("close") == 1
    assert ["end"] in srv.events(ident)


def test_stalled_readers_cost_bounded_memory_and_block_no_one(server_factory):
    srv = server_factory("tests.apps:router")
    idents = [unique_id() for _ in range(3)]
    stalled = [RawClient(srv.host, srv.port, rcvbuf=CHUNK) for _ in idents]
    try:
        for c, ident in zip(stalled, idents):
            c.request("GET", "/stream/?chunks=%d&size=%d&id=%s" % (CHUNKS_50MB, CHUNK, ident))
        # Wait until every stream has started and filled what it can.
        assert wait_for(lambda: all(max_pulled(srv, i) >= 0 for i in idents))
        time.sleep(1.0)
        rss = srv.rss_kib()
        for i in range(5):
            resp = get(srv.port, "/environ/while-stalled-%d" % i)
            assert resp.json()["PATH_INFO"] == "/environ/while-stalled-%d" % i
        assert not RSS_MEANINGFUL or (rss < RSS_LIMIT_KIB and srv.rss_kib() < RSS_LIMIT_KIB), rss
        for ident in idents:
            assert max_pulled(srv, ident) < CHUNKS_50MB // 2
    finally:
        for c in stalled:
            c.close()
    for ident in idents:  # the clients left mid-stream: each generator is closed once
        assert srv.wait_event(ident, "close", timeout=15), srv.events(ident)
        assert [e[0] for e in srv.events(ident)].count("close") == 1
        assert ["end"] not in srv.events(ident)


def test_slow_reader_of_a_file_wrapper_response(server_factory, tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for i in range(160):  # 10 MiB, same pattern as /stream/
            f.write(bytes([i % 256]) * CHUNK)
    srv = server_factory("tests.apps:router")
    with RawClient(srv.host, srv.port, rcvbuf=CHUNK) as slow:
        slow.request("GET", "/file_wrapper/?cl=1&path=%s" % quote(str(path)), version="HTTP/1.1")
        head = slow.read_head()
        assert head.header("Content-Length") == str(160 * CHUNK)
        received = 0
        for i in range(20):
            received += len(slow.read_exact(CHUNK))
            time.sleep(0.05)
            if i == 10:
                assert get(srv.port, "/hello/").status == 200
        data = slow.read_exact(160 * CHUNK - received)
        assert len(data) == 160 * CHUNK - received
        assert data[-CHUNK:] == bytes([159]) * CHUNK
        assert not RSS_MEANINGFUL or srv.rss_kib() < RSS_LIMIT_KIB
