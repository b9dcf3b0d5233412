"""Two ``aiowsgi.Server`` objects in one process (one thread each) share nothing mutable
(SPEC section 3): each serves its own app, a stalled client of one does not stop the other."""

from tests.support import RawClient, ServerProcess, build_request, get, unique_id


def test_two_servers_in_one_process_serve_their_own_apps(server_factory):
    srv = server_factory("tests.apps:router", "tests.apps:other")
    (host_a, port_a), (host_b, port_b) = srv.listening
    assert port_a != port_b
    with RawClient(host_a, port_a) as a, RawClient(host_b, port_b) as b:
        for i in range(5):  # interleaved on two kept-alive connections
            a.request("GET", "/environ/a%d" % i)
            b.request("GET", "/b%d" % i)
            assert b.read_response().body == b"other app\n"
            env = a.read_response().json()
            assert env["PATH_INFO"] == "/environ/a%d" % i
            assert env["SERVER_PORT"] == str(port_a)
    assert get(port_b, "/hello/").body == b"other app\n"
    assert get(port_a, "/hello/").body == b"Hello, world!\n"


def test_two_servers_one_stalled_client_does_not_block_the_other(server_factory):
    srv = server_factory("tests.apps:router", "tests.apps:router")
    (host_a, port_a), (host_b, port_b) = srv.listening
    ident = unique_id()
    stalled = RawClient(host_a, port_a, rcvbuf=65536)
    try:
        stalled.request("GET", "/stream/?chunks=800&size=65536&id=" + ident)
        assert stalled.read_head().status == 200
        assert srv.wait_event(ident, "pulled")
        for i in range(10):
            resp = get(port_b, "/environ/b%d" % i)
            assert resp.json()["SERVER_PORT"] == str(port_b)
            resp = get(port_a, "/environ/a%d" % i)
            assert resp.json()["SERVER_PORT"] == str(port_a)
        with RawClient(host_b, port_b) as c:  # pipelining on B while A has a stalled stream
            c.send(b"".join(build_request("GET", "/environ/p%d" % i) for i in range(20)))
            for i in range(20):
                assert c.read_response().json()["PATH_INFO"] == "/environ/p%d" % i
    finally:
        stalled.close()
    assert srv.wait_event(ident, "close", timeout=15)


def test_two_servers_with_different_options_keep_their_own(server_factory):
    srv = server_factory("tests.apps:router", "tests.apps:router", s0_max_body_size=10,
                         s1_max_header_size=1024)
    (_, port_a), (_, port_b) = srv.listening
    assert get(port_a, "/echo/", method="POST", body=b"x" * 11).status == 413
    assert get(port_b, "/echo/", method="POST", body=b"x" * 11).status == 200
    big_header = [("X-Big", "b" * 2000)]
    assert get(port_a, "/environ/", headers=big_header).status == 200
    assert get(port_b, "/environ/", headers=big_header).status == 431


def test_two_servers_stop_cleanly_together():
    srv = ServerProcess("tests.apps:router", "tests.apps:other").start()
    try:
        for _, port in srv.listening:
            assert get(port, "/hello/").status == 200
        keep = RawClient(*srv.listening[0])  # an idle kept-alive connection
        keep.request("GET", "/hello/")
        keep.read_response()
        assert srv.stop() == 0, srv.stderr()[-3000:]
        keep.close()
    finally:
        srv.kill()
