"""Signals to the master (SPEC section 2): TERM/INT graceful, QUIT immediate, HUP reload."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from tests.launcher import get_json, request, split_address, start, write_app

assert start  # a fixture, used by name below


def refused(address: str, timeout: float = 10.0) -> bool:
    """True once connecting to ``address`` is refused (bounded wait)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(split_address(address), timeout=1):
                pass
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def in_background(target):
    result = {}

    def run():
        try:
            result["value"] = target()
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_graceful_stop_finishes_in_flight_request_and_exits_0(start, signum, workers):
    server = start("-b", "127.0.0.1:0", "-w", workers, "app:app")
    address = server.wait_listening()[0]
    thread, result = in_background(lambda: get_json(address, "/sleep?2", timeout=20))
    time.sleep(0.5)  # the request is in the app now
    server.signal(signum)
    thread.join(20)
    assert result.get("value", {}).get("path") == "/sleep", result
    assert server.wait(20) == 0
    assert refused(address, timeout=5)
    assert "Shutting down gracefully" in server.stderr


# stop() closes the core's listening sockets at once, even while a worker is busy in an app
# call, so connections made during the drain are refused rather than parked in the backlog.
@pytest.mark.parametrize("workers", ["1", "2"])
def test_graceful_stop_refuses_new_connections_while_requests_finish(start, workers):
    server = start("-b", "127.0.0.1:0", "-w", workers, "app:app")
    address = server.wait_listening()[0]
    thread, result = in_background(lambda: get_json(address, "/sleep?2", timeout=20))
    time.sleep(0.5)  # the request is in the app now
    server.signal(signal.SIGTERM)
    try:
        assert refused(address, timeout=1.2)  # while the slow request still runs
    finally:
        thread.join(20)
    assert result.get("value", {}).get("path") == "/sleep", result
    assert server.wait(20) == 0


def test_graceful_timeout_bounds_the_wait_for_in_flight_requests(start):
    server = start("-b", "127.0.0.1:0", "--graceful-timeout", "0.5", "--timeout", "0",
                   "app:app")
    address = server.wait_listening()[0]
    thread, result = in_background(lambda: request(address, "/sleep?30", timeout=30))
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    assert server.wait(20) == 0  # long before the 30 s request could have finished
    thread.join(20)
    assert "error" in result or result["value"][0] != 200, result


def test_sigquit_stops_at_once(start):
    server = start("-b", "127.0.0.1:0", "-w", "2", "--timeout", "0", "app:app")
    address = server.wait_listening()[0]
    thread, result = in_background(lambda: request(address, "/sleep?30", timeout=30))
    time.sleep(0.5)
    server.signal(signal.SIGQUIT)
    assert server.wait(20) == 0
    thread.join(20)
    assert "error" in result, result  # the in-flight request was cut
    assert refused(address, timeout=1)


def test_sighup_reloads_edited_source_without_failed_requests(start, tmp_path):
    server = start("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.wait_listening()[0]
    old_pids = set(server.children())
    seen = []
    failures = []
    stop = threading.Event()

    def client():
        while not stop.is_set() and len(seen) < 5000:
            try:
                seen.append(get_json(address, timeout=10)["version"])
            except Exception as exc:  # any failure fails the test
                failures.append(repr(exc))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.3)
        write_app(tmp_path, version="2-edited")  # a different size: no stale bytecode
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (seen and seen[-1] == "2-edited"
                                                   and not old_pids & set(server.children())):
            time.sleep(0.05)
        time.sleep(0.3)  # and keep the client going a little on the new workers
    finally:
        stop.set()
        thread.join(20)
    assert failures == []
    assert "1" in seen and seen[-1] == "2-edited"
    first_new = seen.index("2-edited")
    assert set(seen[first_new:]) <= {"1", "2-edited"}
    assert not old_pids & set(server.children())
    assert len(server.children()) == 2
    assert "Reloading" in server.stderr


def test_sighup_with_broken_source_keeps_the_running_workers(start, tmp_path):
    server = start("-b", "127.0.0.1:0", "-w", "2", "app:app")
    address = server.wait_listening()[0]
    old_pids = set(server.children())
    (tmp_path / "app.py").write_text("def app(:\n")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "Reload failed" not in server.stderr:
        time.sleep(0.05)
    assert "cannot import 'app:app': SyntaxError" in server.stderr
    assert "Reload failed; the running workers keep serving" in server.stderr
    assert set(server.children()) == old_pids
    assert get_json(address)["version"] == "1"
    write_app(tmp_path, version="fixed again")
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (old_pids & set(server.children())
                                           or len(server.children()) != 2):
        time.sleep(0.05)
    assert not old_pids & set(server.children())
    assert {get_json(address)["version"] for _ in range(4)} == {"fixed again"}


def test_second_sigint_stops_at_once(start):
    server = start("-b", "127.0.0.1:0", "--timeout", "0", "app:app")
    address = server.wait_listening()[0]
    thread, result = in_background(lambda: request(address, "/sleep?30", timeout=30))
    time.sleep(0.5)
    server.signal(signal.SIGINT)
    time.sleep(0.3)
    server.signal(signal.SIGINT)
    assert server.wait(20) == 0
    thread.join(20)
    assert "error" in result, result
