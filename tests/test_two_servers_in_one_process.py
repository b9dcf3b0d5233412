"""Two ``aiowsgi.Server`` objects in one process (one thread each) share nothing mutable
(SPEC section 3): each serves its own app with its own options and logs, a stalled client of
one does not stop the other, and one stops while the other serves on."""

from tests.support.apps import reporting_app
from tests.support.client import RawClient, build_request, connection_refused, get, get_json
from tests.support.server import unique_id


def test_two_servers_in_one_process_serve_their_own_apps(start):
    srv = start.apps("tests.support.apps:router", "tests.support.apps:other")
    a_address, b_address = srv.addresses
    assert a_address != b_address
    with RawClient(a_address) as a, RawClient(b_address) as b:
        for i in range(5):  # interleaved on two kept-alive connections
            a.request("GET", "/environ/a%d" % i)
            b.request("GET", "/b%d" % i)
            assert b.read_response().body == b"other app\n"
            env = a.read_response().json()
            assert env["PATH_INFO"] == "/environ/a%d" % i
            assert env["SERVER_PORT"] == a_address.rsplit(":", 1)[1]
    assert get(b_address, "/hello/").body == b"other app\n"
    assert get(a_address, "/hello/").body == b"Hello, world!\n"


def test_two_servers_one_stalled_client_does_not_block_the_other(start):
    srv = start.apps("tests.support.apps:router", "tests.support.apps:router")
    a_address, b_address = srv.addresses
    ident = unique_id()
    stalled = RawClient(a_address, rcvbuf=65536)
    try:
        stalled.request("GET", "/stream/?chunks=800&size=65536&id=" + ident)
        assert stalled.read_head().status == 200
        assert srv.wait_event(ident, "pulled")
        for i in range(10):
            for address in (b_address, a_address):
                env = get_json(address, "/environ/%d" % i)
                assert env["SERVER_PORT"] == address.rsplit(":", 1)[1]
        with RawClient(b_address) as c:  # pipelining on B while A has a stalled stream
            c.send(b"".join(build_request("GET", "/environ/p%d" % i) for i in range(20)))
            for i in range(20):
                assert c.read_response().json()["PATH_INFO"] == "/environ/p%d" % i
    finally:
        stalled.close()
    assert srv.wait_event(ident, "close", timeout=15)


def test_two_servers_with_different_options_keep_their_own(start):
    srv = start.apps("tests.support.apps:router", "tests.support.apps:router",
                     s0_max_body_size=10, s1_max_header_size=1024)
    a_address, b_address = srv.addresses
    assert get(a_address, "/echo/", method="POST", body=b"x" * 11).status == 413
    assert get(b_address, "/echo/", method="POST", body=b"x" * 11).status == 200
    big_header = [("X-Big", "b" * 2000)]
    assert get(a_address, "/environ/", headers=big_header).status == 200
    assert get(b_address, "/environ/", headers=big_header).status == 431


def test_two_servers_stop_cleanly_together(start):
    srv = start.apps("tests.support.apps:router", "tests.support.apps:other")
    for address in srv.addresses:
        assert get(address, "/hello/").status == 200
    with srv.client() as keep:  # an idle kept-alive connection
        keep.request("GET", "/hello/")
        keep.read_response()
        assert srv.stop() == 0, srv.stderr()[-3000:]


def test_one_server_stops_while_the_other_serves_on(start, tmp_path):
    first = start.in_thread(reporting_app(name="first"), access_log=str(tmp_path / "1.log"))
    second = start.in_thread(reporting_app(name="second"), access_log=str(tmp_path / "2.log"))
    assert get_json(first.address)["app"] == "first"
    assert get_json(second.address)["app"] == "second"
    first.stop()
    assert connection_refused(first.address)
    assert get_json(second.address)["app"] == "second"  # still serving
    second.stop()
    assert len((tmp_path / "1.log").read_text().splitlines()) == 1  # each its own access log
    assert len((tmp_path / "2.log").read_text().splitlines()) == 2
