"""Helpers shared by the hardening tests: a real server in a child process
(tools/hardening_server.py) and raw-socket clients. No mocks: every byte goes over a real
127.0.0.1 TCP socket to a real aiowsgi process.

Under a sanitizer or valgrind everything is slower; AIOWSGI_SLOW=N multiplies the time limits.
"""

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
SLOW = float(os.environ.get("AIOWSGI_SLOW", "1"))


def aiowsgi_root():
    """The folder the tests imported aiowsgi from (the sanitizer run uses its own copy)."""
    import aiowsgi
    return os.path.dirname(os.path.dirname(os.path.abspath(aiowsgi.__file__)))


class ServerProcess:
    """tools/hardening_server.py in a child process; every app call is recorded in a file."""

    def __init__(self, workdir, **options):
        self.record_path = os.path.join(workdir, "calls-%d.log" % id(self))
        open(self.record_path, "w").close()
        env = dict(os.environ, AIOWSGI_IMPORT_FROM=aiowsgi_root())
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "hardening_server.py"), self.record_path,
             json.dumps(options)], stdout=subprocess.PIPE, env=env)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30 * SLOW)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not re.match(r"^127\.0\.0\.1:\d+$", line):
            self.stop()
            raise RuntimeError("the server did not start (printed %r)" % line)
        self.host, port = line.split(":")
        self.port = int(port)
        self.pid = self.proc.pid

    @property
    def address(self):
        return (self.host, self.port)

    def records(self):
        with open(self.record_path) as f:
            return f.read().splitlines()

    def alive(self):
        return self.proc.poll() is None

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for %d" % self.pid)

    def nfds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc.stdout.close()
        return self.proc.returncode


def connect(address, timeout=5.0):
    sock = socket.create_connection(address, timeout=timeout * SLOW)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_close(sock, timeout=5.0, limit=1 << 22):
    """Read until the peer closes. Returns (data, closed): closed is False if the peer kept
    the connection open for `timeout` seconds after the last byte."""
    data = b""
    sock.settimeout(timeout * SLOW)
    while len(data) < limit:
        try:
            piece = sock.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not piece:
            return data, True
        data += piece
    return data, False


def exchange(address, payload, timeout=5.0):
    """Send raw bytes, read until the server closes: (response bytes, closed)."""
    with connect(address) as sock:
        try:
            sock.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_until_close(sock, timeout)


STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def statuses(response):
    """Status codes of every response head found in a byte stream (pipelined answers)."""
    return [int(m.group(1)) for m in STATUS_RE.finditer(response)]


_LEFTOVER = weakref.WeakKeyDictionary()  # bytes read past a response: the next pipelined one


def read_response(sock, timeout=5.0, head_request=False):
    """Read one response with a Content-Length or chunked body from a kept-alive connection.
    Returns (status, headers dict with lower-case names, body). Bytes of the next pipelined
    response are kept for the next call on the same socket."""
    sock.settimeout(timeout * SLOW)
    buf = _LEFTOVER.pop(sock, b"")
    deadline = time.monotonic() + timeout * SLOW
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise TimeoutError("no response head")
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("closed before a response head: %r" % buf)
        buf += piece
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()

    def fill(n):
        nonlocal rest
        while len(rest) < n:
            piece = sock.recv(65536)
            if not piece:
                raise ConnectionError("closed mid-body")
            rest += piece

    if head_request or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers:
        n = int(headers["content-length"])
        fill(n)
        body, rest = rest[:n], rest[n:]
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                fill(len(rest) + 1)
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            fill(size + 2)
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    else:
        raise ValueError("response without framing: %r" % head)
    if rest:
        _LEFTOVER[sock] = rest
    return status, headers, body
