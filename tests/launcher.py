"""Helpers for the launcher tests: run the real ``python -m aiowsgi`` and talk HTTP to it.

Every wait is bounded in time; every process started here is killed (with its workers, by
process group) when the test ends.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest

import aiowsgi

ROOT = str(Path(aiowsgi.__file__).resolve().parent.parent)
LISTENING = re.compile(r"Listening on (\S+) \((\d+) workers?\)")

# A test app: reports its process, version and what the server told it, as JSON.
# /sleep?S sleeps S seconds first; /errors writes to wsgi.errors; /fail raises.
APP_SOURCE = '''\
import json, os, time

VERSION = {version!r}


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "2"))
    elif path == "/errors":
        environ["wsgi.errors"].write("message for the error log\\n")
    elif path == "/fail":
        raise RuntimeError("the app failed on purpose")
    body = json.dumps({{
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "version": VERSION,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "scheme": environ["wsgi.url_scheme"],
        "multiprocess": environ["wsgi.multiprocess"],
        "path": path,
    }}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
'''


def write_app(directory: Path, name: str = "app", version: str = "1") -> Path:
    """Write the test app as ``directory/name.py``."""
    path = directory / (name + ".py")
    path.write_text(APP_SOURCE.format(version=version))
    return path


def child_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # an edited app is always re-read from source
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    env.update(extra)
    return env


class Aiowsgi:
    """``python -m aiowsgi ARGS`` (or ``command ARGS``) in its own process group, stderr
    captured to a file."""

    def __init__(self, args: Sequence[str], cwd: Path, env: Optional[Dict[str, str]] = None,
                 prefix: Sequence[str] = (), pass_fds: Sequence[int] = (),
                 stdout: Any = subprocess.DEVNULL,
                 command: Sequence[str] = (sys.executable, "-m", "aiowsgi")) -> None:
        self.stderr_path = cwd / ("aiowsgi-stderr-%d.log" % time.monotonic_ns())
        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [*prefix, *command, *args], cwd=str(cwd),
            env=env or child_env(), stdout=stdout, stderr=self._stderr,
            start_new_session=True, pass_fds=tuple(pass_fds))
        self.pid = self.proc.pid
        self.addresses: List[str] = []

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 20.0) -> List[str]:
        """Wait for the start-up lines; returns the addresses (``127.0.0.1:41234``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = LISTENING.findall(self.stderr)
            if found:
                time.sleep(0.05)  # let the other lines of a multi-address start arrive
                found = LISTENING.findall(self.stderr)
                self.addresses = [url.replace("http://", "") for url, _ in found]
                return self.addresses
            if self.proc.poll() is not None:
                raise AssertionError("aiowsgi exited with %s:\n%s"
                                     % (self.proc.returncode, self.stderr))
            time.sleep(0.05)
        raise AssertionError("aiowsgi did not start listening:\n" + self.stderr)

    @property
    def address(self) -> str:
        return self.addresses[0]

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def children(self) -> List[int]:
        """The master's child processes (its workers) right now."""
        path = "/proc/%d/task/%d/children" % (self.pid, self.pid)
        with open(path) as f:
            return [int(pid) for pid in f.read().split()]

    def close(self) -> None:
        if self.proc.poll() is None or _group_alive(self.pid):
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        finally:
            self._stderr.close()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def split_address(address: str) -> Tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def request(address: str, path: str = "/", timeout: float = 10.0,
            headers: Optional[Dict[str, str]] = None,
            source: Optional[str] = None) -> Tuple[int, Dict[str, str], bytes]:
    """One request on a new connection (``Connection: close``); ``address`` is
    ``HOST:PORT`` or ``unix:PATH``.  Returns (status, headers, body)."""
    headers = {"Connection": "close", **(headers or {})}
    if address.startswith("unix:"):
        conn: http.client.HTTPConnection = _UnixConnection(address[5:], timeout)
    else:
        host, port = split_address(address)
        conn = http.client.HTTPConnection(
            host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body
    finally:
        conn.close()


def get_json(address: str, path: str = "/", **kwargs: Any) -> Dict[str, Any]:
    status, _, body = request(address, path, **kwargs)
    assert status == 200, (status, body)
    result: Dict[str, Any] = json.loads(body)
    return result


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


def distinct_worker_pids(address: str, want: int, timeout: float = 20.0) -> List[int]:
    """Pids of ``want`` different workers, found by keeping one worker busy in a slow request
    while asking again (the busy worker cannot accept, so another one must answer)."""
    import threading

    seen: List[int] = []
    deadline = time.monotonic() + timeout
    while len(set(seen)) < want and time.monotonic() < deadline:
        busy = threading.Thread(
            target=lambda: seen.append(get_json(address, "/sleep?0.5")["pid"]))
        busy.start()
        time.sleep(0.2)
        seen.append(get_json(address, "/")["pid"])
        busy.join(10)
    return sorted(set(seen))


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Aiowsgi]]:
    """``start(*args, **kwargs)`` runs aiowsgi in ``tmp_path`` (where ``app.py`` is written);
    every server started is killed at the end of the test."""
    write_app(tmp_path)
    started: List[Aiowsgi] = []

    def run(*args: str, **kwargs: Any) -> Aiowsgi:
        kwargs.setdefault("cwd", tmp_path)
        server = Aiowsgi(args, **kwargs)
        started.append(server)
        return server

    yield run
    for server in started:
        server.close()
