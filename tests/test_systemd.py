"""Under systemd (SPEC section 2): ``Type=notify``, spoken by the master on the socket named by
``$NOTIFY_SOCKET`` (here a real unix datagram socket the test binds, by path or abstract
name): ``READY=1`` once every worker serves, ``RELOADING=1`` and ``READY=1`` around a SIGHUP,
``STOPPING=1``, ``WATCHDOG=1`` at half ``WATCHDOG_USEC`` when it is meant for this process;
the workers and the app do not inherit the variables.  ``--pid FILE`` holds the master's pid
while it runs.  (Socket activation, ``LISTEN_FDS``: tests/test_listening_sockets.py.)
"""

import signal
import socket
import sys
import time
import uuid

import pytest

from tests.support.client import get, get_json
from tests.support.server import run_command, write_cli_app
from tests.support.waits import scaled, wait_for

# An app that says what a worker sees of systemd's variables; the first worker to import it
# is ready at once, the others only SLOW seconds later.
SLOW_BOOT_APP = """\
import json, os, time

try:
    os.close(os.open("first-import", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
except FileExistsError:
    time.sleep(%(slow)s)


def app(environ, start_response):
    body = json.dumps({name: os.environ.get(name) for name in
                       ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""


class NotifySocket:
    """The service manager's end: a datagram socket bound to a path, or to an abstract name
    (``NOTIFY_SOCKET=@name``)."""

    def __init__(self, directory, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "aiowsgi-test-%s" % uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = str(directory / "notify.sock")
            self.sock.bind(path)
            self.env_value = path

    def close(self):
        self.sock.close()

    def messages(self, wait=0.0):
        """The messages that came within ``wait`` seconds (scaled), each as {name: value}."""
        out = []
        deadline = time.monotonic() + scaled(wait)
        while True:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                return out
            out.append(dict(line.split("=", 1) for line in data.decode().split("\n")))

    def wait_for(self, name, value="1", timeout=20.0):
        """The first message with ``name=value`` within ``timeout``; the ones before it are
        dropped.  None if none came."""
        deadline = time.monotonic() + scaled(timeout)
        while time.monotonic() < deadline:
            for message in self.messages(0.1):
                if message.get(name) == value:
                    return message
        return None


@pytest.fixture
def notify(tmp_path):
    sockets = []

    def make(abstract=False):
        sockets.append(NotifySocket(tmp_path, abstract))
        return sockets[-1]

    yield make
    for sock in sockets:
        sock.close()


def slow_boot_app(directory, slow=1.5):
    (directory / "app.py").write_text(SLOW_BOOT_APP % {"slow": slow})


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_once_every_worker_serves_then_reloading_and_stopping(start, tmp_path, notify,
                                                                    abstract):
    slow_boot_app(tmp_path)
    manager = notify(abstract)
    srv = start.cli("-b", "127.0.0.1:0", "-w", "3", "app:app",
                    env={"NOTIFY_SOCKET": manager.env_value})
    # the first worker serves (the start-up line is out), the two others are still importing
    first_served = time.monotonic()
    assert get(srv.address, "/").status == 200
    assert all("READY" not in m for m in manager.messages(0.3)), "READY=1 before every worker"
    ready = manager.wait_for("READY")
    assert ready is not None and time.monotonic() - first_served > 1.0
    assert ready["STATUS"] == "Serving with 3 workers"
    # the workers and the app do not see the variables
    assert get_json(srv.address, "/") == {"NOTIFY_SOCKET": None, "WATCHDOG_USEC": None,
                                          "WATCHDOG_PID": None}
    old = set(srv.children())
    srv.signal(signal.SIGHUP)
    reloading = manager.wait_for("RELOADING")
    assert reloading is not None and int(reloading["MONOTONIC_USEC"]) > 0
    ready = manager.wait_for("READY", timeout=30)
    assert ready is not None
    # three workers of the new code serve (retired ones may still be finishing)
    assert len(set(srv.children()) - old) >= 3, "READY=1 before the reload ended"
    srv.signal(signal.SIGTERM)
    assert manager.wait_for("STOPPING") is not None
    assert srv.wait(20) == 0


def test_watchdog_every_half_watchdog_usec_when_meant_for_the_master(start, tmp_path, notify):
    manager = notify()
    srv = start.cli("-b", "127.0.0.1:0", "app:app",
                    env={"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "600000"})
    assert manager.wait_for("READY") is not None
    began = time.monotonic()
    pings = [m for m in manager.messages(1.6) if m.get("WATCHDOG") == "1"]
    expected = (time.monotonic() - began) / 0.3  # every 0.3 s (the wait is scaled)
    assert expected / 2 <= len(pings) <= expected + 2, (len(pings), expected)
    srv.stop()


def test_no_watchdog_for_another_process(start, notify):
    manager = notify()
    srv = start.cli("-b", "127.0.0.1:0", "app:app",
                    env={"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "200000",
                         "WATCHDOG_PID": "1"})
    assert manager.wait_for("READY") is not None
    assert not [m for m in manager.messages(0.8) if "WATCHDOG" in m]
    srv.stop()


def test_one_process_without_a_master_tells_ready_and_stopping(start, notify):
    manager = notify()
    srv = start.apps("tests.support.apps:hello", env={"NOTIFY_SOCKET": manager.env_value})
    assert manager.wait_for("READY") is not None
    srv.signal(signal.SIGTERM)
    assert manager.wait_for("STOPPING") is not None
    assert srv.wait(10) == 0


def test_a_notify_socket_nobody_listens_on_harms_nothing(start, tmp_path):
    srv = start.cli("-b", "127.0.0.1:0", "app:app",
                    env={"NOTIFY_SOCKET": str(tmp_path / "nobody-here")})
    assert get(srv.address, "/").status == 200
    srv.signal(signal.SIGTERM)
    assert srv.wait(10) == 0


# -- --pid -------------------------------------------------------------------------------------

def test_pid_file_holds_the_masters_pid_and_goes_on_exit(start, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "run").mkdir()
    write_cli_app(tmp_path / "sub")
    srv = start.cli("-b", "127.0.0.1:0", "-w", "2", "--pid", "run/aiowsgi.pid", "--chdir",
                    "sub", "app:app", cwd=tmp_path)
    pid_file = tmp_path / "run" / "aiowsgi.pid"  # where it was started, before --chdir
    assert pid_file.read_text() == "%d\n" % srv.pid
    assert not (tmp_path / "sub" / "run").exists()
    srv.signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    assert not pid_file.exists()


def test_a_pid_file_that_cannot_be_written_is_an_error(tmp_path):
    (tmp_path / "app.py").write_text("def app(environ, start_response):\n    return []\n")
    result = run_command([sys.executable, "-m", "aiowsgi", "-b", "127.0.0.1:0", "--pid",
                          str(tmp_path / "missing-dir" / "x.pid"), "app:app"], cwd=tmp_path)
    assert result.returncode == 1, result
    assert "aiowsgi: cannot write --pid" in result.stderr, result.stderr
