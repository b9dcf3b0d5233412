"""The Python API of SPEC section 3: ``Server`` and ``serve``, and the listening sockets.

A Server binds its sockets when it is built (so port 0 is resolved at once), then either runs
a :class:`~aiowsgi.worker.Worker` (the C loop) in this process, or, with several workers or an
app given as an import string, hands the sockets to a :class:`~aiowsgi.master.Master` that
forks workers.
Everything per request is the core's; this module never reads a request.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import threading
from typing import TYPE_CHECKING, List, Optional, Sequence, Union

from .config import (DEFAULT_BIND, AccessLogFunc, BindAddress, Config, ConfigError,
                     parse_bind)
from . import hooks
from .importer import check_app_spec, load_app
from .log import AccessLog, error_log, setup_error_log
from .master import Master
from .worker import Worker

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from typing_extensions import Unpack

    from .config import Options

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3


class BindError(OSError):
    """A listening address could not be bound; ``str()`` is
    ``cannot bind 127.0.0.1:8000: Address already in use``."""

    def __init__(self, address: str, error: OSError) -> None:
        super().__init__(error.errno, "cannot bind %s: %s" % (address, error.strerror or error))
        self.address = address

    def __str__(self) -> str:
        return str(self.strerror)


class Server:
    """Serve ``app`` on ``bind`` (one address or a list; see :func:`aiowsgi.config.parse_bind`).

    ``app`` is a WSGI callable, or an import string such as ``"pkg.mod:app"``.  Options are
    those of the command line as keyword arguments (``workers=4``, ``keepalive=2.0``...), with
    the defaults of :class:`aiowsgi.config.Config`.  Without ``bind``, the sockets systemd passes
    (``LISTEN_FDS``) are served, else ``127.0.0.1:8000``.

    The sockets are bound here: :attr:`sockets` and :attr:`addresses` (``"127.0.0.1:41234"``,
    ``"[::1]:8000"``, ``"unix:/run/app.sock"``) are known before :meth:`serve_forever`.

    With ``workers=1`` and an app object, the app is served in this process (no master; the
    ``timeout`` option then needs a master and is not enforced).  With more workers, an import
    string (as the command line does), or ``metrics_bind``, this process becomes the master: it forks the workers,
    replaces those that die or hang, and handles SIGTERM, SIGINT, SIGQUIT and SIGHUP while
    :meth:`serve_forever` runs in the main thread.  A Server serves once.
    """

    def __init__(self, app: Union[WSGIApplication, str],
                 bind: Union[str, Sequence[str], None] = None,
                 **options: Unpack[Options]) -> None:
        config = Config(bind=bind, **options)  # type: ignore[arg-type]  # Config normalises
        self.config: Config = config
        if config.chdir is not None:
            os.chdir(config.chdir)
        if isinstance(app, str):
            check_app_spec(app)
        elif not callable(app):
            raise TypeError("app must be a WSGI callable or an import string, not %s"
                            % type(app).__name__)
        elif config.reload:
            raise ConfigError("--reload needs the app as an import string ('module:app'), "
                              "so that new workers can import its new source")
        setup_error_log(config.log_level_number)
        self.sockets: List[socket.socket] = []
        self.addresses: List[str] = []
        self.metrics_socket: Optional[socket.socket] = None
        hooks.call_or_fail(config.on_starting, "on_starting", self)
        made = False
        if config.preload and isinstance(app, str):  # copy-on-write into every worker
            app, made = load_app(app, factory=config.factory), True
        self.access_log: Optional[AccessLogFunc] = None
        self._access_file: Optional[AccessLog] = None
        if callable(config.access_log):
            self.access_log = config.access_log
        elif config.access_log is not None:
            try:
                self.access_log = self._access_file = AccessLog(config.access_log,
                                                                config.access_log_format)
            except OSError as exc:
                raise ConfigError("invalid --access-log %r: %s"
                                  % (config.access_log, exc.strerror or exc)) from exc
        self._unix_paths: List[str] = []
        try:
            self._open_sockets()
        except BaseException:
            self._close()
            raise
        self.addresses = [describe(sock) for sock in self.sockets]
        self._worker: Optional[Worker] = None
        self._master: Optional[Master] = None
        try:
            if isinstance(app, str) or made or config.workers > 1 or config.metrics_bind:
                self._master = Master(app, config, self.sockets, self.access_log,
                                      on_ready=self._log_listening, server=self, made=made,
                                      metrics_socket=self.metrics_socket)
            else:
                self._worker = Worker(app, config, self.sockets, self.access_log)
                self._worker.boot()
        except BaseException:
            self._close()
            raise

    @property
    def uses_master(self) -> bool:
        """True when serve_forever() runs a master process with forked workers."""
        return self._master is not None

    def serve_forever(self) -> None:
        """Serve until :meth:`stop`; with a master, also until SIGTERM, SIGINT or SIGQUIT.

        Raises :class:`aiowsgi.importer.AppImportError` when the workers cannot import an
        import-string app at start-up.
        """
        try:
            if self._master is not None:
                self._master.run()
            else:
                assert self._worker is not None
                hooks.call(self.config.when_ready, "when_ready", self)
                self._log_listening()
                self._worker.run()
        finally:
            self._close()
            hooks.call(self.config.on_exit, "on_exit", self)

    def stop(self, graceful: bool = True) -> None:
        """Stop serving: gracefully (stop accepting, let in-flight requests finish within
        ``graceful_timeout``), or at once.  Safe from another thread or a signal handler."""
        if self._master is not None:
            self._master.stop(graceful)
        elif self._worker is not None:
            self._worker.stop(graceful)

    def reopen_logs(self) -> None:
        """Open the access-log file again by name, after log rotation moved it (with a
        master, in every worker too).  What SIGUSR1 does.  Safe from a signal handler."""
        if self._master is not None:
            self._master.reopen_logs()
        elif self._access_file is not None:
            self._access_file.reopen()

    def _log_listening(self) -> None:
        workers = self.config.workers
        for address in self.addresses:
            error_log.info("Listening on %s (%d worker%s)", url(address), workers,
                           "" if workers == 1 else "s")

    def _open_sockets(self) -> None:
        if self.config.bind is None:
            inherited = systemd_sockets()
            if inherited is not None:
                self.sockets.extend(inherited)
                return
        for text in self.config.bind or (DEFAULT_BIND,):
            self.sockets.append(self._bind(text))
        if self.config.metrics_bind is not None:
            self.metrics_socket = self._bind(self.config.metrics_bind)

    def _bind(self, text: str) -> socket.socket:
        address = parse_bind(text)
        sock = bind_socket(address, self.config.backlog)
        if address.kind == "unix":
            self._unix_paths.append(address.path)
        return sock

    def _close(self) -> None:
        """Close the sockets (removing unix socket files) and the access-log file."""
        if self._access_file is not None:
            self._access_file.close()
        for sock in self.sockets + ([self.metrics_socket] if self.metrics_socket else []):
            sock.close()
        for path in self._unix_paths:
            try:
                os.unlink(path)
            except OSError:
                pass
        self._unix_paths = []


def serve(app: Union[WSGIApplication, str], bind: Union[str, Sequence[str], None] = None,
          **options: Unpack[Options]) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (graceful) or SIGQUIT (immediate); SIGUSR1
    reopens the access log.

    Takes the arguments of :class:`Server`.  Signal handlers are installed when called from the
    main thread and restored afterwards.
    """
    server = Server(app, bind, **options)
    if server.uses_master or threading.current_thread() is not threading.main_thread():
        server.serve_forever()  # a master handles its signals itself
        return
    handlers = {
        signal.SIGINT: lambda *_: server.stop(graceful=True),
        signal.SIGTERM: lambda *_: server.stop(graceful=True),
        signal.SIGQUIT: lambda *_: server.stop(graceful=False),
        signal.SIGUSR1: lambda *_: server.reopen_logs(),
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def bind_socket(address: BindAddress, backlog: int) -> socket.socket:
    """A listening, non-blocking socket for ``address``; raises :class:`BindError`."""
    sock: Optional[socket.socket] = None
    try:
        if address.kind == "fd":
            sock = socket.socket(fileno=address.fd)
        elif address.kind == "unix":
            _remove_stale_unix_socket(address.path)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(address.path)
        else:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            # a name with both families ("localhost") binds its IPv4 address, like most servers
            family, type_, proto, _, sockaddr = min(
                infos, key=lambda info: info[0] != socket.AF_INET)
            sock = socket.socket(family, type_, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:  # [::]:80 means IPv6 only; bind 0.0.0.0 for IPv4
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(sockaddr)
        sock.listen(backlog)  # on an inherited listening socket this only sets the backlog
        sock.setblocking(False)
        return sock
    except OSError as exc:
        if sock is not None and address.kind != "fd":
            sock.close()
        if isinstance(exc, socket.gaierror):
            exc = OSError(errno.EADDRNOTAVAIL, exc.strerror)
        raise BindError(address.text, exc) from exc


def _remove_stale_unix_socket(path: str) -> None:
    """Remove a socket file left by a server that is gone; a live one stays (bind then fails
    with "Address already in use"), and so does anything that is not a socket."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            os.unlink(path)
        except OSError:
            pass


def systemd_sockets() -> Optional[List[socket.socket]]:
    """The sockets of systemd socket activation (sd_listen_fds(3)), or None when there are none
    for this process.  The variables are removed so that children do not take them too."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if count <= 0:
        return None
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        sock = socket.socket(fileno=fd)
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def describe(sock: socket.socket) -> str:
    """``127.0.0.1:8000``, ``[::1]:8000`` or ``unix:/path`` for a listening socket."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:" + (name.decode() if isinstance(name, bytes) else name)
    if sock.family == socket.AF_INET6:
        return "[%s]:%d" % (name[0], name[1])
    return "%s:%d" % (name[0], name[1])


def url(address: str) -> str:
    """How the start-up line shows an address: ``http://HOST:PORT`` or ``unix:PATH``."""
    return address if address.startswith("unix:") else "http://" + address
