"""What runs inside a worker process: the C loop on the listening sockets, and a forked
worker's life from boot to exit.

Owns :class:`Worker` (one process's ``aiowsgi._core.Server``, wired to this process's logging:
what ``Server`` runs in the calling process and what every forked worker runs), and for a forked
worker (:func:`run_forked`) the worker's side of the boot pipe, its signal handlers and the
watch for a master that is gone.  Must not fork or know about other workers; it never imports
``master.py`` or ``server.py`` (they import it).
"""

from __future__ import annotations

import mmap
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Dict, List, NoReturn, Optional, Sequence, Set, Tuple,
                    Union)

from . import _core, hooks
from .config import AccessLogFunc, Config
from .importer import AppImportError, load_app, make_app
from .log import (RESPONSE_HEADERS_KEY, AccessLog, ErrorStream, access_format_atoms, core_log,
                  error_log)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

# How a forked worker ends, as the master reads its exit status.
EXIT_OK = 0            # stopped when asked, or after max_requests: replace unless shutting down
EXIT_BOOT_FAILED = 3   # the worker could not start; its reason came on the boot pipe

# What a forked worker writes on its boot pipe (one message, then it closes the pipe).
BOOT_READY = b"R"
BOOT_IMPORT_ERROR = b"I"   # followed by the reason, UTF-8
BOOT_OTHER_ERROR = b"E"    # followed by a one-line description, UTF-8


class Worker:
    """One process serving ``app`` on ``sockets``: the C loop, wired to this process's logging.

    Made in two steps, so that the ``post_fork`` hook receives it before the app is imported:
    the object, then :meth:`boot`, which imports ``app`` when it is an import string (in a
    forked worker, after the fork) and, with ``config.factory``, calls it to make the app,
    unless ``made`` (the master made it already: --preload).  ``heartbeat``, ``metrics`` and
    ``max_requests`` are the core's (see ``aiowsgi/_core.pyi``); ``max_requests`` defaults to
    ``config.max_requests``.

    This object is the ``worker`` that hooks receive: ``pid``, ``config``, ``sockets``, and
    ``app`` once booted.
    """

    def __init__(self, app: Union[WSGIApplication, str], config: Config,
                 sockets: Sequence[socket.socket], access_log: Optional[AccessLogFunc],
                 heartbeat: Any = None, max_requests: Optional[int] = None,
                 metrics: Any = None, made: bool = False) -> None:
        self.app = app
        self.config = config
        self.sockets = sockets
        self.pid = os.getpid()
        self.core: Any = None  # the _core.Server, once booted
        self._access_log = access_log
        self._core_args = {"heartbeat": heartbeat, "metrics": metrics}
        self._max_requests = max_requests
        self._made = made

    def boot(self) -> None:
        """Import and make the app, and the core that serves it.  Raises
        :class:`~aiowsgi.importer.AppImportError` when the app cannot be imported."""
        config, app = self.config, self.app
        if isinstance(app, str):
            app = load_app(app, factory=config.factory)
        elif not self._made:
            app = make_app(app, config.factory)
        self.app = app
        options = config.core_options()
        if self._max_requests is not None:
            options["max_requests"] = self._max_requests
        options.update((name, value) for name, value in self._core_args.items()
                       if value is not None)
        self.core = _core.Server(
            self._wrapped(app), [sock.fileno() for sock in self.sockets],
            errors=ErrorStream() if config.errors is None else config.errors,
            log=core_log if config.log is None else config.log,
            access_log=self._with_post_request(self._access_log), **options)

    def _wrapped(self, app: WSGIApplication) -> WSGIApplication:
        """The app as the core calls it: with the pre_request hook, and with the app's response
        headers kept for the access log when its format has a ``{name}o`` atom; the app itself
        when neither is asked for (a request then costs no Python call of ours).  The response
        passes through untouched: a one-item list keeps its computed Content-Length, a file
        wrapper its sendfile."""
        config = self.config
        if config.access_log is not None and any(
                atom.endswith("}o") for atom in access_format_atoms(config.access_log_format)):
            app = _keeping_response_headers(app)
        pre_request = config.pre_request
        if pre_request is not None:
            app = _with_pre_request(app, pre_request, self)
        return app

    def _with_post_request(self, access_log: Optional[AccessLogFunc]) -> Optional[AccessLogFunc]:
        """The core's access-log callable, also calling the post_request hook once the response
        is done, for the requests that reached the app (not the server's own 400s...)."""
        post_request = self.config.post_request
        if post_request is None:
            return access_log

        def log_and_post_request(environ: Dict[str, Any], status: int, nbytes: int,
                                 duration: float) -> None:
            if access_log is not None:
                access_log(environ, status, nbytes, duration)
            if "wsgi.version" in environ:
                hooks.call(post_request, "post_request", self, environ, status)

        return log_and_post_request

    def run(self) -> None:
        """Serve until :meth:`stop` (or max_requests); returns after the graceful drain."""
        self.core.run()

    def stop(self, graceful: bool = True) -> None:
        """Stop accepting at once and close this process's copies of the sockets (once every
        process has, new connections are refused); let in-flight requests finish within
        ``graceful_timeout``, or close everything now.  Safe from other threads and signal
        handlers."""
        self.core.stop(graceful, self.config.graceful_timeout)
        for sock in self.sockets:
            sock.close()


def _same_protocol(wrapper: Any, app: Any) -> WSGIApplication:
    """``wrapper`` keeps the input protocol ``app`` asked for (aiowsgi.streaming_input)."""
    if getattr(app, _core.STREAMING_ATTR, False):
        setattr(wrapper, _core.STREAMING_ATTR, True)
    return wrapper  # type: ignore[no-any-return]


def _with_pre_request(app: WSGIApplication, pre_request: hooks.Hook,
                      worker: Worker) -> WSGIApplication:
    """``app``, with ``pre_request(worker, environ)`` called before each call of it."""
    def with_pre_request(environ: Dict[str, Any], start_response: Any) -> Any:
        hooks.call(pre_request, "pre_request", worker, environ)
        return app(environ, start_response)

    return _same_protocol(with_pre_request, app)


def _keeping_response_headers(app: WSGIApplication) -> WSGIApplication:
    """``app``, its response headers kept in the environ for ``{name}o`` access-log atoms."""
    def keeping_response_headers(environ: Dict[str, Any], start_response: Any) -> Any:
        def keep(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
            environ[RESPONSE_HEADERS_KEY] = headers
            return start_response(status, headers, exc_info)
        return app(environ, keep)

    return _same_protocol(keeping_response_headers, app)


@dataclass
class ForkedWorker:
    """What the master hands a worker it has just forked."""

    app: Union[WSGIApplication, str]
    config: Config
    sockets: Sequence[socket.socket]
    access_log: Optional[AccessLogFunc]
    heartbeat: mmap.mmap   # where the core writes when the current app call began
    boot_pipe: int         # write end: one BOOT_* message, then closed
    life_pipe: int         # read end of a pipe the master never writes: EOF once it is gone
    max_requests: int      # config.max_requests with this worker's jitter
    server: Any = None     # what hooks receive as ``server`` (the aiowsgi.Server)
    metrics: Optional[mmap.mmap] = None  # where the core counts requests (--metrics-bind)
    made: bool = False     # app is the app itself, made by the master (--preload)
    modules_pipe: int = -1  # write end: the files of the imported modules (--reload)
    # what the process inherited from the master and must not keep: the master's own pipe
    # ends (file descriptors), sockets and the other workers' maps and pipes
    inherited: Sequence[Any] = ()


def run_forked(spec: ForkedWorker) -> NoReturn:  # pragma: no cover - runs in the child
    """The whole life of a forked worker; ends the process (``os._exit``), never returns."""
    code = 1
    try:
        code = _boot_and_serve(spec)
    except BaseException:
        error_log.exception("Worker %d failed", os.getpid())
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _boot_and_serve(spec: ForkedWorker) -> int:  # pragma: no cover - runs in the child
    """Import the app, report on the boot pipe, serve; returns the exit code."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)  # until the loop exists, a signal just ends us
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # reloads are the master's business
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until there is a log to reopen
    for thing in spec.inherited:
        if isinstance(thing, int):
            os.close(thing)
        else:
            thing.close()
    worker = Worker(spec.app, spec.config, spec.sockets, spec.access_log,
                    heartbeat=spec.heartbeat, max_requests=spec.max_requests,
                    metrics=spec.metrics, made=spec.made)
    hooks.call(spec.config.post_fork, "post_fork", spec.server, worker)
    try:
        worker.boot()
    except AppImportError as exc:
        _write_all(spec.boot_pipe, BOOT_IMPORT_ERROR + exc.reason.encode("utf-8", "replace"))
        return EXIT_BOOT_FAILED
    except Exception as exc:
        error_log.exception("Worker %d failed to boot", os.getpid())
        _write_all(spec.boot_pipe, BOOT_OTHER_ERROR + ("%s: %s" % (type(exc).__name__, exc))
                   .encode("utf-8", "replace"))
        return EXIT_BOOT_FAILED
    hooks.call(spec.config.post_worker_init, "post_worker_init", worker)
    _handle_signals(worker, spec.access_log)
    threading.Thread(target=_stop_when_orphaned, args=(worker, spec.life_pipe), daemon=True,
                     name="aiowsgi-orphan-watch").start()
    if spec.modules_pipe >= 0:
        threading.Thread(target=_report_modules, args=(spec.modules_pipe,), daemon=True,
                         name="aiowsgi-reload-modules").start()
    _write_all(spec.boot_pipe, BOOT_READY)
    os.close(spec.boot_pipe)
    worker.run()
    for sock in spec.sockets:
        sock.close()
    hooks.call(spec.config.worker_exit, "worker_exit", spec.server, worker)
    return EXIT_OK


MODULE_SCAN_INTERVAL = 1.0  # seconds between looks at sys.modules for newly imported ones


def module_files(seen: Set[str]) -> List[str]:
    """The files of the modules in ``sys.modules`` not in ``seen`` (which they are added to):
    what --reload watches."""
    found = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and path not in seen:
            seen.add(path)
            found.append(os.path.abspath(path))
    return found


def _report_modules(fd: int) -> None:  # pragma: no cover - runs in the child
    """Tell the master (one path a line) the files of the imported modules, now and whenever
    more modules have been imported (an app may import some on its first request)."""
    seen: Set[str] = set()
    count = -1
    try:
        while True:
            if len(sys.modules) != count:
                count = len(sys.modules)
                paths = module_files(seen)
                if paths:
                    _write_all(fd, "".join(p + "\n" for p in paths).encode("utf-8",
                                                                           "surrogateescape"))
            time.sleep(MODULE_SCAN_INTERVAL)
    except OSError:
        pass  # the master is gone


def _handle_signals(worker: Worker,
                    access_log: Optional[AccessLogFunc]) -> None:  # pragma: no cover - child
    """A serving worker's signals: TERM/INT stop it gracefully, QUIT at once, USR1 reopens
    the access-log file (HUP stays ignored)."""
    def stop(signum: int, frame: Any) -> None:
        worker.stop(graceful=signum != signal.SIGQUIT)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, stop)
    if isinstance(access_log, AccessLog):
        reopen = access_log.reopen
        signal.signal(signal.SIGUSR1, lambda signum, frame: reopen())
        reopen()  # in case the master reopened it after our fork


def _stop_when_orphaned(worker: Worker, life_pipe: int) -> None:  # pragma: no cover - child
    """Wait for the master to end (EOF on the life pipe), then stop serving gracefully."""
    try:
        while os.read(life_pipe, 1):
            pass
    except OSError:
        pass
    error_log.warning("Worker %d: the master is gone; stopping", os.getpid())
    worker.core.stop(True, worker.config.graceful_timeout)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
