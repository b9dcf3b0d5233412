"""The Python API of SPEC section 3: ``Server`` and ``serve``.

Binds the listening sockets in Python and hands their file descriptors to the C loop
(``aiowsgi._core.Server``), which owns everything per request.
"""

import signal
import socket
import threading

from . import _core

_CORE_OPTIONS = ("keepalive", "header_timeout", "max_header_size", "max_body_size",
                 "spool_threshold", "stream_input", "max_requests", "url_scheme",
                 "forwarded_allow_ips", "errors", "log", "access_log")


def _bind_one(addr, backlog):
    if addr.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(addr[5:])
    else:
        host, _, port = addr.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def _describe(sock):
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:" + name
    if sock.family == socket.AF_INET6:
        return "[%s]:%d" % (name[0], name[1])
    return "%s:%d" % name


class Server:
    """Serve ``app`` on ``bind`` (one address or a list); the sockets are bound at once."""

    def __init__(self, app, bind="127.0.0.1:8000", backlog=2048, **options):
        binds = [bind] if isinstance(bind, str) else list(bind)
        self.sockets = [_bind_one(addr, backlog) for addr in binds]
        self.addresses = [_describe(sock) for sock in self.sockets]
        core_opts = {k: v for k, v in options.items() if k in _CORE_OPTIONS}
        self._core = _core.Server(app, [s.fileno() for s in self.sockets], **core_opts)

    def serve_forever(self):
        try:
            self._core.run()
        finally:
            for sock in self.sockets:
                sock.close()

    def stop(self, graceful=True):
        self._core.stop(graceful)


def serve(app, bind="127.0.0.1:8000", **options):
    """Serve ``app`` in this process until SIGINT or SIGTERM."""
    server = Server(app, bind=bind, **options)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: server.stop())
    for addr in server.addresses:
        print("Listening on http://%s" % addr, flush=True)
    server.serve_forever()
