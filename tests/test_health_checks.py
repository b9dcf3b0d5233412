"""What a load balancer sees (SPEC section 2): ``--health-path`` answered by the C core (200
while serving, 503 once stopping, never reaching the app), and ``--shutdown-delay``: after
SIGTERM the server goes on accepting and serving that long with its health check failing and
every response saying ``Connection: close``, then stops as a graceful stop does; SIGINT, and
the workers a reload retires, do not wait, and a reload never fails the health check.
"""

import signal
import sys
import threading
import time

import pytest

import aiowsgi
from aiowsgi.config import ConfigError
from tests.support.client import connection_refused, get, get_json
from tests.support.server import ROUTER, run_command, sockets_of, unique_id
from tests.support.waits import wait_for


def health(address, path="/healthz", **kwargs):
    return get(address, path, **kwargs)


# -- --health-path -----------------------------------------------------------------------------

def test_health_path_is_answered_by_the_core_not_the_app(start):
    # a path the app serves too: the core's answer shows the app was not called
    srv = start.apps(ROUTER, health_path="/hello/", record_access=True)
    ident = unique_id()
    resp = srv.get("/hello/?id=" + ident)
    assert (resp.status, resp.body) == (200, b"ok\n"), resp
    assert resp.header("Cache-Control") == "no-store"
    assert resp.header("Content-Type") == "text/plain; charset=utf-8"
    assert resp.has_header("Date") and resp.header("Server") == "aiowsgi"
    assert srv.count_events(ident, "call") == 0
    assert srv.get("/hell%6F/").body == b"ok\n"  # matched on the decoded path
    assert srv.get("/hello/x").body == b"Hello, world!\n"  # below it: the app's
    # counted like any request: the access log has it
    assert wait_for(lambda: ["200", "3", "GET", "/hello/?id=" + ident] in srv.events("access"))


def test_health_path_keeps_the_connection_and_knows_head_and_other_methods(start):
    srv = start.apps(ROUTER, health_path="/healthz")
    with srv.client() as c:
        for _ in range(3):
            c.request("GET", "/healthz")
            resp = c.read_response()
            assert resp.status == 200 and "close" not in resp.connection_tokens()
        c.request("HEAD", "/healthz")
        resp = c.read_response("HEAD")
        assert resp.status == 200 and resp.header("Content-Length") == "3" and not resp.body
        c.request("POST", "/healthz", body=b"x")
        resp = c.read_response()
        assert resp.status == 405 and resp.header("Allow") == "GET, HEAD"
        assert "close" in resp.connection_tokens()  # its body was not read
        assert c.peer_closed(5)


def test_health_path_over_http10_and_pipelined(start):
    srv = start.apps(ROUTER, health_path="/healthz")
    resp = get(srv.address, "/healthz", version="HTTP/1.0")
    assert resp.status == 200 and "close" in resp.connection_tokens()
    with srv.client() as c:
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"ok\n", b"Hello, world!\n", b"ok\n"]


@pytest.mark.parametrize("bad", ["healthz", "/h?x=1", "/h#f", "/a b", "/" + "x" * 256, ""])
def test_health_path_must_be_a_url_path(bad):
    with pytest.raises(ConfigError, match="--health-path"):
        aiowsgi.Server(lambda e, s: [], "127.0.0.1:0", health_path=bad)


def test_health_path_from_the_command_line_and_a_bad_one(start, tmp_path):
    srv = start.cli("-b", "127.0.0.1:0", "-w", "2", "--health-path", "/-/health", "app:app")
    assert health(srv.address, "/-/health").body == b"ok\n"
    assert get_json(srv.address, "/x")["path"] == "/x"
    result = run_command([sys.executable, "-m", "aiowsgi", "--health-path", "health", "app:app"],
                         cwd=tmp_path)
    assert result.returncode == 2 and "invalid --health-path 'health'" in result.stderr


# -- --shutdown-delay --------------------------------------------------------------------------

def test_sigterm_with_a_shutdown_delay_serves_on_failing_the_health_check(start):
    srv = start.cli("-b", "127.0.0.1:0", "-w", "2", "--health-path", "/healthz",
                    "--shutdown-delay", "2", "app:app")
    assert health(srv.address).status == 200
    with srv.client() as kept:
        kept.request("GET", "/before")
        assert kept.read_response().status == 200
        srv.signal(signal.SIGTERM)
        began = time.monotonic()
        assert wait_for(lambda: health(srv.address).status == 503, 1.5)
        # (the master signals each worker: the other may take a moment more)
        assert wait_for(lambda: all(health(srv.address).status == 503 for _ in range(4)), 1)
        resp = health(srv.address)
        assert resp.body == b"stopping\n" and "close" in resp.connection_tokens()
        # new connections are still accepted and served, and told to close
        resp = get(srv.address, "/during")
        assert resp.status == 200 and resp.json()["path"] == "/during"
        assert "close" in resp.connection_tokens()
        # the kept-alive connection too: its next answer says close
        kept.request("GET", "/kept")
        resp = kept.read_response()
        assert resp.status == 200 and "close" in resp.connection_tokens()
        assert time.monotonic() - began < 2, "the checks took longer than the delay"
    assert wait_for(lambda: connection_refused(srv.address), 10)
    assert time.monotonic() - began > 1.5  # not before the delay is over
    assert srv.wait(15) == 0, srv.stderr()[-3000:]
    assert "--shutdown-delay" in srv.stderr()


def test_sigint_does_not_wait_for_the_shutdown_delay(start):
    srv = start.cli("-b", "127.0.0.1:0", "--health-path", "/healthz", "--shutdown-delay", "60",
                    "app:app")
    srv.signal(signal.SIGINT)
    assert srv.wait(10) == 0, srv.stderr()[-3000:]


def test_sigint_during_the_shutdown_delay_ends_it(start):
    srv = start.cli("-b", "127.0.0.1:0", "--health-path", "/healthz", "--shutdown-delay", "60",
                    "app:app")
    srv.signal(signal.SIGTERM)
    assert wait_for(lambda: health(srv.address).status == 503, 5)
    srv.signal(signal.SIGINT)  # during a shutdown: stop at once
    assert srv.wait(10) == 0, srv.stderr()[-3000:]


def test_graceful_timeout_counts_from_the_end_of_the_delay(start):
    srv = start.cli("-b", "127.0.0.1:0", "--shutdown-delay", "1", "--graceful-timeout", "3",
                    "--timeout", "0", "app:app")
    result = {}
    thread = threading.Thread(target=lambda: result.update(
        resp=get(srv.address, "/sleep?3.5", timeout=20)))
    thread.start()
    time.sleep(0.5)
    srv.signal(signal.SIGTERM)
    thread.join(20)
    # 3.5 s of app call, begun 1.5 s before the graceful timeout started: it finishes
    assert result["resp"].status == 200, result
    assert srv.wait(15) == 0


def test_a_reload_never_fails_the_health_check(start):
    # the workers a reload retires stop at once (SIGINT), without the delay, and the others
    # keep answering 200: a load balancer never takes the server out for a reload
    srv = start.cli("-b", "127.0.0.1:0", "-w", "2", "--health-path", "/healthz",
                    "--shutdown-delay", "30", "app:app")
    before = set(srv.children())
    statuses = []
    srv.signal(signal.SIGHUP)
    gone = wait_for(lambda: statuses.append(health(srv.address).status)
                    or not before & set(srv.children()), 20, interval=0.05)
    assert gone, "the old workers are still there: %s" % srv.stderr()[-3000:]
    assert statuses and set(statuses) == {200}, statuses
    assert health(srv.address).status == 200


def test_a_retired_worker_answers_200_on_a_kept_alive_connection(start):
    # a load balancer checking over a kept-alive connection that a reload's retired worker
    # still holds must not see the host fail (it is not going away): 200, and the connection
    # closes after it
    srv = start.cli("-b", "127.0.0.1:0", "-w", "1", "--keepalive", "30", "--health-path",
                    "/healthz", "app:app")
    with srv.client() as c:
        c.request("GET", "/before")
        old = c.read_response().json()["pid"]
        serving = sockets_of(old)
        srv.signal(signal.SIGHUP)
        # retired once the new worker serves: it closes its listening sockets, not ours
        assert wait_for(lambda: sockets_of(old) < serving, 20), srv.stderr()
        c.request("GET", "/healthz")
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"ok\n")
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(10)


def plain_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app\n"]


def test_server_stop_from_python_with_a_shutdown_delay(start):
    running = start.in_thread(plain_app, health_path="/healthz", shutdown_delay=1.0)
    assert health(running.address).status == 200
    began = time.monotonic()
    running.server.stop()
    assert wait_for(lambda: health(running.address).status == 503, 0.8)
    assert get(running.address, "/").body == b"app\n"
    assert wait_for(lambda: connection_refused(running.address), 5)
    assert time.monotonic() - began > 0.8  # it served through the delay
    running.stop()
