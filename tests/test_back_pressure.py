"""Back-pressure on responses (SPEC section 4): the response iterable is pulled only while the
send buffer is below a bound, so a client that reads slowly, or not at all, costs bounded
memory and blocks no one else; files go out with sendfile at the reader's pace."""

import hashlib
import time
from urllib.parse import quote

from tests.support.client import assert_served_promptly, build_request, timed_request
from tests.support.server import ROUTER, RSS_MEANINGFUL, unique_id
from tests.support.waits import wait_for

CHUNK = 65536
CHUNKS_50MB = 800  # 800 x 64 KiB = 50 MiB
RSS_LIMIT_KIB = 100 * 1024


def max_pulled(srv, ident):
    pulled = [int(e[1]) for e in srv.events(ident) if e[0] == "pulled"]
    return max(pulled) if pulled else -1


def check_stream_piece(data, offset):
    """``data`` found at ``offset`` of a /stream/ body: chunk i of the app is CHUNK bytes of
    i % 256 (a piece on the wire may span chunks of the app)."""
    pos = 0
    while pos < len(data):
        index, within = divmod(offset + pos, CHUNK)
        span = min(len(data) - pos, CHUNK - within)
        assert data[pos:pos + span] == bytes([index % 256]) * span, \
            "wrong bytes at offset %d" % (offset + pos)
        pos += span


def test_slow_reader_of_50mb_costs_bounded_memory_and_blocks_no_one(start):
    srv = start.apps(ROUTER)
    assert srv.get("/hello/").status == 200
    ident = unique_id()
    rss = [srv.rss_kib()]
    received, latencies = 0, []
    with srv.client(rcvbuf=CHUNK) as slow, srv.client() as other:
        slow.request("GET", "/stream/?chunks=%d&size=%d&id=%s" % (CHUNKS_50MB, CHUNK, ident))
        head = slow.read_head()
        assert head.status == 200 and head.header("Transfer-Encoding") == "chunked"
        # Slow phase: about 2.5 MiB over 2 s, while another client is served.
        for i in range(40):
            size, data = slow.read_chunk()
            check_stream_piece(data, received)
            received += size
            time.sleep(0.05)
            if i % 10 == 5:
                latencies.append(timed_request(other))
                rss.append(srv.rss_kib())
        # The generator must not have run far ahead of what the client took.
        ahead = (max_pulled(srv, ident) + 16) * CHUNK - received
        assert ahead < 32 * 1024 * 1024, "pulled %d bytes ahead of a slow reader" % ahead
        assert max_pulled(srv, ident) < CHUNKS_50MB - 16
        rss.append(srv.rss_kib())
        # Fast phase: the rest, every byte checked.
        for i in range(10 * CHUNKS_50MB):
            size, data = slow.read_chunk()
            if size == 0:
                break
            check_stream_piece(data, received)
            received += size
            if i % 100 == 0:
                rss.append(srv.rss_kib())
        assert received == CHUNKS_50MB * CHUNK
    assert_served_promptly(latencies)
    assert not RSS_MEANINGFUL or max(rss) < RSS_LIMIT_KIB, "server RSS: %d KiB" % max(rss)
    assert srv.wait_event(ident, "close")
    assert srv.count_events(ident, "close") == 1
    assert ["end"] in srv.events(ident)


def test_stalled_readers_cost_bounded_memory_and_block_no_one(start):
    srv = start.apps(ROUTER)
    idents = [unique_id() for _ in range(3)]
    stalled = [srv.client(rcvbuf=CHUNK) for _ in idents]
    try:
        for c, ident in zip(stalled, idents):
            c.request("GET", "/stream/?chunks=%d&size=%d&id=%s" % (CHUNKS_50MB, CHUNK, ident))
        # Wait until every stream has started and filled what it can.
        assert wait_for(lambda: all(max_pulled(srv, i) >= 0 for i in idents))
        time.sleep(1.0)
        rss = srv.rss_kib()
        for i in range(5):
            resp = srv.get("/environ/while-stalled-%d" % i)
            assert resp.json()["PATH_INFO"] == "/environ/while-stalled-%d" % i
        assert not RSS_MEANINGFUL or (rss < RSS_LIMIT_KIB and srv.rss_kib() < RSS_LIMIT_KIB), rss
        for ident in idents:
            assert max_pulled(srv, ident) < CHUNKS_50MB // 2
    finally:
        for c in stalled:
            c.close()
    for ident in idents:  # the clients left mid-stream: each generator is closed once
        assert srv.wait_event(ident, "close", timeout=15), srv.events(ident)
        assert srv.count_events(ident, "close") == 1
        assert ["end"] not in srv.events(ident)


def test_slow_reader_of_a_file_gets_it_whole_and_blocks_no_one(start, tmp_path):
    path = tmp_path / "slow.bin"
    data = hashlib.sha256(b"slow").digest() * (8 * 1024 * 1024 // 32)  # 8 MiB
    path.write_bytes(data)
    srv = start.apps(ROUTER)
    assert srv.get("/hello/").status == 200
    rss_before = srv.rss_kib()
    latencies = []
    with srv.client(rcvbuf=16384) as slow, srv.client() as other:
        slow.request("GET", "/file_wrapper/?cl=1&path=" + quote(str(path)))
        head = slow.read_head()
        assert head.header("Content-Length") == str(len(data))
        received = bytearray()
        while len(received) < len(data):
            piece = slow.read_exact(min(16384, len(data) - len(received)))
            assert piece, "cut after %d bytes" % len(received)
            received += piece
            if len(received) % (256 * 1024) < 16384:  # a request beside it every 256 KiB
                latencies.append(timed_request(other))
            time.sleep(0.0005)
        rss_after = srv.rss_kib()
    assert received == data
    assert_served_promptly(latencies)
    assert not RSS_MEANINGFUL or rss_after - rss_before < 8 * 1024


def test_pipelined_flood_unread_by_the_client_costs_bounded_memory(start):
    # 400 pipelined requests for 256 KiB each (100 MiB of responses) that the client does not
    # read at first: the server must stop reading requests, not buffer answers.
    srv = start.apps(ROUTER)
    count = 400
    with srv.client(rcvbuf=65536) as c:
        c.send(build_request("GET", "/stream/?chunks=4&size=65536") * count)
        time.sleep(1.5)
        rss = srv.rss_kib()
        assert not RSS_MEANINGFUL or rss < 100 * 1024, \
            "server RSS %d KiB with unread pipelined responses" % rss
        assert srv.get("/hello/").status == 200  # others are still served meanwhile
        for i in range(count):
            resp = c.read_response()
            assert resp.complete and len(resp.body) == 4 * 65536, i
        assert not RSS_MEANINGFUL or srv.rss_kib() < 100 * 1024
