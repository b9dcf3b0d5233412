"""Worker processes (SPEC section 2): they share the listening sockets; a dead or hung
(``--timeout``) worker is replaced while the others keep serving; ``--max-requests`` recycles
them; SIGHUP restarts them one by one on the edited source; they stop when the master is
gone."""

import os
import signal
import threading
import time

from tests.support.client import get, get_json
from tests.support.server import ROUTER, distinct_worker_pids, sockets_of, write_cli_app
from tests.support.waits import wait_for


def test_two_workers_both_serve(start):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.address
    assert "Listening on http://%s (2 workers)" % address in server.stderr()
    pids = distinct_worker_pids(address, 2)
    assert len(pids) == 2
    assert server.pid not in pids
    assert set(pids) == set(server.children())
    info = get_json(address)
    assert info["ppid"] == server.pid and info["multiprocess"] is True


def test_single_worker_is_not_multiprocess(start):
    server = start.cli("-b", "127.0.0.1:0", "app:app")
    info = get_json(server.address)
    assert info["multiprocess"] is False and info["ppid"] == server.pid


def test_killed_worker_is_replaced(start):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.address
    before = distinct_worker_pids(address, 2)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    after = wait_for(lambda: (lambda now: now if len(now) == 2 and before[0] not in now
                                else None)(server.children()))
    assert after, server.children()
    assert before[1] in after
    assert "died (killed by SIGKILL); starting a new one" in server.stderr()
    assert sorted(distinct_worker_pids(address, 2)) == sorted(after)


def test_hung_worker_is_killed_after_timeout_and_others_keep_serving(start):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "--timeout", "1", "app:app")
    address = server.address
    outcome = {}

    def hang():
        try:
            outcome["response"] = get(address, "/sleep?5", timeout=20)
        except OSError as exc:  # the connection is cut when the worker is killed
            outcome["error"] = exc

    hung = threading.Thread(target=hang)
    hung.start()
    time.sleep(0.3)
    for _ in range(5):  # the other worker answers meanwhile
        assert get_json(address)["path"] == "/"
    hung.join(20)
    assert not hung.is_alive()
    assert "error" in outcome, outcome  # cut, not answered
    assert "(--timeout); killing the worker" in server.stderr()
    assert wait_for(lambda: len(server.children()) == 2)
    assert len(distinct_worker_pids(address, 2)) == 2


def test_timeout_zero_lets_slow_calls_finish(start):
    server = start.cli("-b", "127.0.0.1:0", "--timeout", "0", "app:app")
    address = server.address
    assert get_json(address, "/sleep?1.5", timeout=20)["path"] == "/sleep"


def test_max_requests_recycles_workers(start):
    server = start.cli("-b", "127.0.0.1:0", "--max-requests", "2", "app:app")
    address = server.address
    pids = [get_json(address, timeout=20)["pid"] for _ in range(6)]
    # max 2 requests per worker (jitter is 10%: none for 2), and no request failed meanwhile
    assert len(set(pids)) >= 3, pids
    assert all(pids.count(pid) <= 2 for pid in pids), pids
    assert "exited after its max requests; starting a new one" in server.stderr()
    assert all(pid not in server.children() for pid in pids[:-2])


def test_workers_stop_when_the_master_is_killed(start):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.address
    workers = distinct_worker_pids(address, 2)
    assert len(workers) == 2
    server.signal(signal.SIGKILL)
    assert server.wait(10) == -signal.SIGKILL

    def gone(pid):
        try:
            os.kill(pid, 0)  # orphans are reaped by init; until then they are zombies
        except ProcessLookupError:
            return True
        try:
            with open("/proc/%d/stat" % pid) as stat:
                return stat.read().split(")")[-1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    assert wait_for(lambda: all(gone(pid) for pid in workers))
    assert "the master is gone; stopping" in server.stderr()


def test_app_that_forks_a_child_at_import_still_boots(start, tmp_path):
    # the child inherits the worker's boot pipe and keeps it open: readiness must not wait
    # for the pipe to close
    (tmp_path / "forking.py").write_text(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "from app import app\n")
    server = start.cli("-b", "127.0.0.1:0", "--timeout", "1", "forking:app")
    address = server.address
    assert get_json(address)["version"] == "1"
    outcome = {}
    try:  # and --timeout is enforced (only booted workers are watched)
        get(address, "/sleep?5", timeout=20)
    except OSError as exc:
        outcome["error"] = exc
    assert "error" in outcome
    assert "(--timeout); killing the worker" in server.stderr()


def test_sighup_reloads_edited_source_without_failed_requests(start, tmp_path):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "app:app")
    old_pids = set(server.children())
    seen, failures = [], []
    stop = threading.Event()

    def client():  # until the test stops it, or a minute has passed
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                seen.append(get_json(server.address, timeout=10)["version"])
            except Exception as exc:  # any failure fails the test
                failures.append(repr(exc))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.3)
        write_cli_app(tmp_path, version="2-edited")
        server.signal(signal.SIGHUP)
        assert wait_for(lambda: seen and seen[-1] == "2-edited"
                        and not old_pids & set(server.children()), timeout=30)
        time.sleep(0.3)  # and keep the client going a little on the new workers
    finally:
        stop.set()
        thread.join(20)
    assert failures == []
    assert "1" in seen and seen[-1] == "2-edited"
    assert set(seen[seen.index("2-edited"):]) <= {"1", "2-edited"}
    assert not old_pids & set(server.children())
    assert len(server.children()) == 2
    log = server.stderr()
    assert "Reloading" in log
    for pid in old_pids:  # the log says which workers went, and why
        assert "Retiring worker %d (reload)" % pid in log


# A worker a reload retires used to close its connections between requests at once: a load
# balancer sending a request on one at that moment lost it (issue 18).  It answers that
# request (saying Connection: close), or closes once the connection is idle past --keepalive.
def test_a_retiring_workers_kept_alive_connection_is_answered_before_it_closes(start):
    server = start.cli("-b", "127.0.0.1:0", "-w", "1", "--keepalive", "30", "app:app")
    with server.client() as c:
        c.request("GET", "/before")
        old = c.read_response().json()["pid"]
        serving = sockets_of(old)
        server.signal(signal.SIGHUP)
        # retired once the new worker serves: it closes its listening sockets, not ours
        assert wait_for(lambda: sockets_of(old) < serving, timeout=20), server.stderr()
        assert get_json(server.address)["pid"] != old
        assert c.nothing_received(0.3)  # still open
        c.request("GET", "/after")
        resp = c.read_response()
        assert resp.status == 200 and resp.json()["pid"] == old
        assert "close" in resp.connection_tokens()
        assert c.peer_closed(10)
    assert wait_for(lambda: old not in server.children(), timeout=10)


def test_sighup_with_broken_source_keeps_the_running_workers(start, tmp_path):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "app:app")
    old_pids = set(server.children())
    (tmp_path / "app.py").write_text("def app(:\n")
    server.signal(signal.SIGHUP)
    assert server.wait_stderr("Reload failed", timeout=20)
    assert "cannot import 'app:app': SyntaxError" in server.stderr()
    assert "Reload failed; the running workers keep serving" in server.stderr()
    assert set(server.children()) == old_pids
    assert get_json(server.address)["version"] == "1"
    write_cli_app(tmp_path, version="fixed again")
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: not old_pids & set(server.children())
                    and len(server.children()) == 2, timeout=20)
    assert {get_json(server.address)["version"] for _ in range(4)} == {"fixed again"}


def test_max_requests_ends_a_loop_after_that_many_requests(start):
    srv = start.apps(ROUTER, max_requests=5)
    with srv.client() as c:
        for i in range(5):
            c.request("GET", "/environ/m%d" % i)
            resp = c.read_response()
            assert resp.status == 200 and resp.json()["PATH_INFO"] == "/environ/m%d" % i
        assert c.peer_closed(10)
    assert srv.wait() == 0, srv.stderr()[-3000:]


def test_max_requests_counts_requests_across_connections(start):
    srv = start.apps(ROUTER, max_requests=3)
    for _ in range(3):
        assert srv.get("/hello/").status == 200
    assert srv.wait() == 0
