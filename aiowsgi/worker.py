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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Optional, Sequence, Union

from . import _core
from .config import AccessLogFunc, Config
from .importer import AppImportError, load_app, make_app
from .log import AccessLog, ErrorStream, core_log, error_log

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

    ``app`` is a WSGI callable or an import string (imported here, so in a forked worker after
    the fork); with ``config.factory`` it is called first to make the app.  ``heartbeat`` and
    ``max_requests`` are the core's (see ``aiowsgi/_core.pyi``); ``max_requests`` defaults to
    ``config.max_requests``.  Raises :class:`~aiowsgi.importer.AppImportError` when the app
    cannot be imported.
    """

    def __init__(self, app: Union[WSGIApplication, str], config: Config,
                 sockets: Sequence[socket.socket], access_log: Optional[AccessLogFunc],
                 heartbeat: Any = None, max_requests: Optional[int] = None) -> None:
        if isinstance(app, str):
            app = load_app(app, factory=config.factory)
        else:
            app = make_app(app, config.factory)
        options = config.core_options()
        if max_requests is not None:
            options["max_requests"] = max_requests
        self.config = config
        self.sockets = sockets
        self.core = _core.Server(
            app, [sock.fileno() for sock in sockets],
            errors=ErrorStream() if config.errors is None else config.errors,
            log=core_log if config.log is None else config.log,
            access_log=access_log, heartbeat=heartbeat, **options)

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
    # what the process inherited from the master and must not keep: the master's own pipe
    # ends (file descriptors) and the other workers' heartbeat maps and boot pipes
    inherited: Sequence[Union[int, mmap.mmap]] = ()


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
    try:
        worker = Worker(spec.app, spec.config, spec.sockets, spec.access_log,
                        heartbeat=spec.heartbeat, max_requests=spec.max_requests)
    except AppImportError as exc:
        _write_all(spec.boot_pipe, BOOT_IMPORT_ERROR + exc.reason.encode("utf-8", "replace"))
        return EXIT_BOOT_FAILED
    except Exception as exc:
        error_log.exception("Worker %d failed to boot", os.getpid())
        _write_all(spec.boot_pipe, BOOT_OTHER_ERROR + ("%s: %s" % (type(exc).__name__, exc))
                   .encode("utf-8", "replace"))
        return EXIT_BOOT_FAILED
    _handle_signals(worker, spec.access_log)
    threading.Thread(target=_stop_when_orphaned, args=(worker, spec.life_pipe), daemon=True,
                     name="aiowsgi-orphan-watch").start()
    _write_all(spec.boot_pipe, BOOT_READY)
    os.close(spec.boot_pipe)
    worker.run()
    for sock in spec.sockets:
        sock.close()
    return EXIT_OK


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
