"""--metrics-bind: the master's Prometheus endpoint, summing what every worker counted.

Each worker's C core counts its requests into a block of shared memory the master made for it
(``_core.Server(metrics=...)``, csrc/metrics.c): no Python runs per request for this.  The
master owns the blocks; when a worker ends, its counters are added to those of the workers that
came before, so that a counter never goes down.  :class:`Metrics` renders the sum in
Prometheus' text format, and answers ``GET /metrics`` on its own listening socket from the
master's loop, without threads (the master forks) and without ever blocking: a client that is
slow to send its request or to read the answer is cut after a few seconds.  Must not know about
processes: master.py tells it which blocks are alive and what happened to workers.
"""

from __future__ import annotations

import collections
import errno
import mmap
import platform
import socket
import time
from typing import Any, Callable, Counter, Dict, Iterable, List, Optional, Tuple

from . import _core

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_REQUEST_HEAD = 8192   # bytes of a scrape's request head
CLIENT_TIMEOUT = 5.0      # seconds a scrape may take, from accept to the last byte sent
MAX_CLIENTS = 16          # connections at once; more wait in the listen backlog
# Why the master replaced a worker (aiowsgi_worker_restarts_total's "reason").
RESTART_REASONS = ("died", "timeout", "max_requests", "max_rss", "reload", "boot_failed",
                   "exited")
COUNTERS = ("requests", "duration", "duration_ns", "body_bytes")
GAUGES = ("connections", "in_flight", "queued")


def new_block() -> mmap.mmap:
    """A worker's block: anonymous, shared with the child it is made for, zeroed."""
    return mmap.mmap(-1, _core.METRICS_SIZE)


class _Client:
    """One scrape in progress: its request head as it arrives, then its answer as it leaves."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""
        self.answer: Optional[bytes] = None
        self.deadline = time.monotonic() + CLIENT_TIMEOUT


class Metrics:
    """The counters of the workers gone, the workers' restarts, and the endpoint on ``sock``
    (a listening socket; non-blocking)."""

    def __init__(self, sock: socket.socket, version: str) -> None:
        self.sock = sock
        self.version = version
        self.started = time.time()
        self.retired: Dict[str, Any] = _zero()
        self.restarts: Counter[str] = collections.Counter()
        self.clients: Dict[int, _Client] = {}

    # -- what master.py tells -------------------------------------------------------------------

    def retire(self, block: mmap.mmap) -> None:
        """A worker ended: its counters join those of the workers gone (its gauges go)."""
        _add(self.retired, _core.metrics_read(block), COUNTERS)

    def count_restart(self, reason: str) -> None:
        self.restarts[reason] += 1

    # -- the endpoint -------------------------------------------------------------------------

    def readers(self) -> List[Any]:
        """What the master's select() should watch for reading."""
        waiting = [c.sock for c in self.clients.values() if c.answer is None]
        return ([self.sock] if len(self.clients) < MAX_CLIENTS else []) + waiting

    def writers(self) -> List[Any]:
        return [c.sock for c in self.clients.values() if c.answer is not None]

    def sockets(self) -> List[socket.socket]:
        """Every socket of the endpoint (a forked worker closes them)."""
        return [self.sock] + [c.sock for c in self.clients.values()]

    def timeout(self) -> Optional[float]:
        """Seconds until the next client's deadline, or None without clients."""
        if not self.clients:
            return None
        return max(0.0, min(c.deadline for c in self.clients.values()) - time.monotonic())

    def serve(self, readable: Iterable[Any], writable: Iterable[Any],
              workers: Callable[[], Tuple[List[mmap.mmap], int, int]]) -> None:
        """Act on what select() found: accept, read requests, send answers, and cut clients
        past their deadline.  ``workers()`` gives what an answer is rendered from, when one
        is: the live workers' blocks, how many workers there are, their resident bytes."""
        ready = set(readable) | set(writable)
        if self.sock in ready:
            self._accept()
        for client in list(self.clients.values()):
            if client.sock in ready:
                if client.answer is None:
                    self._read(client, lambda: self.render(*workers()))
                else:
                    self._write(client)
            elif time.monotonic() >= client.deadline:
                self._close(client)

    def close(self) -> None:
        for client in list(self.clients.values()):
            self._close(client)

    def _accept(self) -> None:
        while len(self.clients) < MAX_CLIENTS:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, a connection reset before accept
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    return
                continue
            sock.setblocking(False)
            self.clients[sock.fileno()] = _Client(sock)

    def _read(self, client: _Client, render: Callable[[], bytes]) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(client)
            return
        client.received += data
        if b"\r\n\r\n" not in client.received and b"\n\n" not in client.received:
            if len(client.received) > MAX_REQUEST_HEAD:
                client.answer = _response("431 Request Header Fields Too Large", b"")
            return
        client.answer = answer(client.received, render)
        self._write(client)

    def _write(self, client: _Client) -> None:
        assert client.answer is not None
        try:
            sent = client.sock.send(client.answer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(client.answer)  # the client is gone: nothing more to send
        client.answer = client.answer[sent:]
        if not client.answer:
            self._close(client)

    def _close(self, client: _Client) -> None:
        self.clients.pop(client.sock.fileno(), None)
        client.sock.close()

    # -- the text format ----------------------------------------------------------------------

    def render(self, blocks: Iterable[mmap.mmap], workers: int, rss: int) -> bytes:
        """Every metric in Prometheus' text exposition format (version 0.0.4)."""
        total = _zero()
        _add(total, self.retired, COUNTERS)
        for block in blocks:
            _add(total, _core.metrics_read(block), COUNTERS + GAUGES)
        out: List[str] = []
        metric = _writer(out)
        methods, classes = _core.METRICS_METHODS, _core.METRICS_CLASSES
        metric("aiowsgi_requests_total", "counter",
               "Requests answered (by the app, or by the server: errors, static files), by "
               "status class and method.",
               [('status="%s",method="%s"' % (cls, method), count)
                for (cls, method), count in zip(((c, m) for c in classes for m in methods),
                                                total["requests"]) if count])
        _histogram(out, total)
        metric("aiowsgi_response_body_bytes_total", "counter",
               "Bytes of response bodies sent.", [("", total["body_bytes"])])
        metric("aiowsgi_connections", "gauge", "Client connections open.",
               [("", total["connections"])])
        metric("aiowsgi_requests_in_flight", "gauge",
               "Requests whose head has arrived and whose answer is not done yet.",
               [("", total["in_flight"])])
        metric("aiowsgi_requests_queued", "gauge",
               "Complete requests waiting for a free app thread (--threads).",
               [("", total["queued"])])
        metric("aiowsgi_workers", "gauge", "Worker processes running.", [("", workers)])
        metric("aiowsgi_workers_resident_bytes", "gauge",
               "Resident memory of the worker processes, summed.", [("", rss)])
        metric("aiowsgi_worker_restarts_total", "counter",
               "Workers replaced by the master, by reason.",
               [('reason="%s"' % reason, self.restarts[reason]) for reason in RESTART_REASONS])
        metric("aiowsgi_uptime_seconds", "gauge", "Seconds since the master started.",
               [("", round(time.time() - self.started, 3))])
        metric("aiowsgi_build_info", "gauge", "The versions running; always 1.",
               [('version="%s",python="%s",llhttp="%d"' % (
                   self.version, platform.python_version(), _core.LLHTTP_VERSION_MAJOR), 1)])
        return "".join(out).encode("utf-8")


def answer(head: bytes, render: Callable[[], bytes]) -> bytes:
    """The whole HTTP answer to a request head: the metrics for ``GET /metrics``."""
    line = head.split(b"\n", 1)[0].decode("latin-1").split()
    if len(line) != 3 or not line[2].startswith("HTTP/"):
        return _response("400 Bad Request", b"")
    method, target = line[0], line[1].split("?", 1)[0]
    if target != "/metrics":
        return _response("404 Not Found", b"metrics are at /metrics\n")
    if method not in ("GET", "HEAD"):
        return _response("405 Method Not Allowed", b"", [("Allow", "GET, HEAD")])
    body = render()
    return _response("200 OK", body, [("Content-Type", CONTENT_TYPE)],
                     send_body=method == "GET")


def _response(status: str, body: bytes, headers: Iterable[Tuple[str, str]] = (),
              send_body: bool = True) -> bytes:
    lines = ["HTTP/1.1 " + status, "Content-Length: %d" % len(body), "Connection: close"]
    lines += ["%s: %s" % header for header in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body if send_body else b"")


def _writer(out: List[str]) -> Any:
    """``metric(name, kind, help, samples)``, appending one metric's lines to ``out``."""
    def metric(name: str, kind: str, help: str, samples: Iterable[Tuple[str, Any]],
               suffix: str = "") -> None:
        out.append("# HELP %s %s\n# TYPE %s %s\n" % (name, help, name, kind))
        for labels, value in samples:
            out.append("%s%s%s %s\n" % (name, suffix, "{%s}" % labels if labels else "", value))
    return metric


def _histogram(out: List[str], total: Dict[str, Any]) -> None:
    """The request-duration histogram: cumulative buckets, then the sum and the count."""
    name = "aiowsgi_request_duration_seconds"
    bounds = ["%g" % bound for bound in _core.METRICS_BUCKETS] + ["+Inf"]
    buckets: List[Tuple[str, Any]] = []
    cumulative = 0
    for bound, count in zip(bounds, total["duration"]):
        cumulative += count
        buckets.append(('le="%s"' % bound, cumulative))
    _writer(out)(name, "histogram", "Time from a request's complete head to the end of its "
                 "answer, in seconds.", buckets, suffix="_bucket")
    out.append("%s_sum %.9f\n%s_count %d\n" % (name, total["duration_ns"] / 1e9, name,
                                                cumulative))


def _zero() -> Dict[str, Any]:
    return {"requests": [0] * (len(_core.METRICS_CLASSES) * len(_core.METRICS_METHODS)),
            "duration": [0] * (len(_core.METRICS_BUCKETS) + 1),
            "duration_ns": 0, "body_bytes": 0, "connections": 0, "in_flight": 0, "queued": 0}


def _add(total: Dict[str, Any], values: Dict[str, Any], names: Iterable[str]) -> None:
    for name in names:
        if isinstance(total[name], list):
            total[name] = [a + b for a, b in zip(total[name], values[name])]
        else:
            total[name] += values[name]


__all__ = ["Metrics", "new_block", "RESTART_REASONS"]
