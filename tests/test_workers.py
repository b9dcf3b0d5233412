"""Worker processes (SPEC section 2): sharing sockets, replacement, --timeout, --max-requests."""

from __future__ import annotations

import os
import signal
import threading
import time

from tests.launcher import distinct_worker_pids, get_json, request, start

assert start  # a fixture, used by name below


def wait_until(condition, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``condition()`` until it returns something true; returns it (or the last value)."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = condition()
    return value


def test_two_workers_both_serve(start):
    server = start("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.wait_listening()[0]
    assert "Listening on http://%s (2 workers)" % address in server.stderr
    pids = distinct_worker_pids(address, 2)
    assert len(pids) == 2
    assert server.pid not in pids
    assert set(pids) == set(server.children())
    info = get_json(address)
    assert info["ppid"] == server.pid and info["multiprocess"] is True


def test_single_worker_is_not_multiprocess(start):
    server = start("-b", "127.0.0.1:0", "app:app")
    info = get_json(server.wait_listening()[0])
    assert info["multiprocess"] is False and info["ppid"] == server.pid


def test_killed_worker_is_replaced(start):
    server = start("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.wait_listening()[0]
    before = distinct_worker_pids(address, 2)
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    after = wait_until(lambda: (lambda now: now if len(now) == 2 and before[0] not in now
                                else None)(server.children()))
    assert after, server.children()
    assert before[1] in after
    assert "died (killed by SIGKILL); starting a new one" in server.stderr
    assert sorted(distinct_worker_pids(address, 2)) == sorted(after)


def test_hung_worker_is_killed_after_timeout_and_others_keep_serving(start):
    server = start("-b", "127.0.0.1:0", "-w", "2", "--timeout", "1", "app:app")
    address = server.wait_listening()[0]
    outcome = {}

    def hang():
        try:
            outcome["response"] = request(address, "/sleep?5", timeout=20)
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
    assert "(--timeout); killing the worker" in server.stderr
    assert wait_until(lambda: len(server.children()) == 2)
    assert len(distinct_worker_pids(address, 2)) == 2


def test_timeout_zero_lets_slow_calls_finish(start):
    server = start("-b", "127.0.0.1:0", "--timeout", "0", "app:app")
    address = server.wait_listening()[0]
    assert get_json(address, "/sleep?1.5", timeout=20)["path"] == "/sleep"


def test_max_requests_recycles_workers(start):
    server = start("-b", "127.0.0.1:0", "--max-requests", "2", "app:app")
    address = server.wait_listening()[0]
    pids = [get_json(address, timeout=20)["pid"] for _ in range(6)]
    # max 2 requests per worker (jitter is 10%: none for 2), and no request failed meanwhile
    assert len(set(pids)) >= 3, pids
    assert all(pids.count(pid) <= 2 for pid in pids), pids
    assert "exited after its max requests; starting a new one" in server.stderr
    assert all(pid not in server.children() for pid in pids[:-2])


def test_workers_stop_when_the_master_is_killed(start):
    server = start("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.wait_listening()[0]
    workers = distinct_worker_pids(address, 2)
    assert len(workers) == 2
    server.signal(signal.SIGKILL)
    server.wait(10)

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

    assert wait_until(lambda: all(gone(pid) for pid in workers))
    assert "the master is gone; stopping" in server.stderr


def test_app_that_forks_a_child_at_import_still_boots(start, tmp_path):
    # the child inherits the worker's boot pipe and keeps it open: readiness must not wait
    # for the pipe to close
    (tmp_path / "forking.py").write_text(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "from app import app\n")
    server = start("-b", "127.0.0.1:0", "--timeout", "1", "forking:app")
    address = server.wait_listening()[0]
    assert get_json(address)["version"] == "1"
    outcome = {}
    try:  # and --timeout is enforced (only booted workers are watched)
        request(address, "/sleep?5", timeout=20)
    except OSError as exc:
        outcome["error"] = exc
    assert "error" in outcome
    assert "(--timeout); killing the worker" in server.stderr
