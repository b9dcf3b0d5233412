"""The master process: forks the workers, watches them, replaces them, and handles signals.

The master owns the listening sockets (bound by ``server.py``) and never imports an app given
as an import string: each worker imports it after the fork, so a worker started after SIGHUP
runs the app's current source.  It never touches a client connection: what runs in a worker
after the fork is ``worker.py``'s (:func:`~aiowsgi.worker.run_forked`).

Signals: SIGTERM/SIGINT stop gracefully, SIGQUIT (or a second SIGINT) stops at once, SIGHUP
replaces the workers one by one, SIGUSR1 reopens the access log.  Each worker has a pipe on
which it reports that it booted (or why it could not) and a shared ``mmap`` where the core
writes when the current app call began, which the master compares with ``--timeout``.  With
--metrics-bind each also has a shared block of counters (metrics.py serves their sum); with
--reload a pipe on which it names the files of the modules it imported (reloader.py watches
them); with --max-rss the master reads its resident size.  The master calls the server hooks
that are its own (when_ready, on_reload); on_starting and on_exit are server.py's.
"""

from __future__ import annotations

import collections
import mmap
import os
import random
import select
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from . import _core, hooks
from .config import AccessLogFunc, Config, limits
from .importer import AppImportError
from .log import AccessLog, error_log
from .metrics import Metrics, new_block
from .reloader import Watcher, syntax_errors
from .worker import (BOOT_IMPORT_ERROR, BOOT_OTHER_ERROR, BOOT_READY, EXIT_OK, ForkedWorker,
                     run_forked)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

POLL_INTERVAL = 0.25       # seconds between checks of the heartbeats
IMMEDIATE_KILL_DELAY = 1.0  # after SIGQUIT to the workers, SIGKILL the ones still there
MAX_RESPAWN_DELAY = 10.0   # back-off cap when new workers keep failing to boot
HEARTBEAT = struct.Struct("=Q")  # native uint64, CLOCK_MONOTONIC nanoseconds; 0: idle
RELOAD_SETTLE = 0.2        # --reload: seconds without a new change before reloading
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class WorkerBootError(RuntimeError):
    """No worker could start (at start-up); the message says why."""


@dataclass
class Child:
    """The master's view of one worker process it forked."""

    pid: int
    generation: int      # the SIGHUP generation the worker was started in
    heartbeat: mmap.mmap
    boot_pipe: int       # read end; -1 once the worker's message has been read
    metrics: Optional[mmap.mmap] = None  # its counters (--metrics-bind)
    modules_pipe: int = -1  # read end: files of the modules it imported (--reload)
    booted: bool = False
    stopping: bool = False  # told to stop (retired by a reload, or shutdown)
    timed_out: bool = False
    replace_for: str = "reload"  # why it is replaced once its generation is old
    message: bytes = b""
    modules: bytes = b""  # an incomplete line of modules_pipe


class Master:
    """Run ``config.workers`` workers serving ``app`` on ``sockets`` until stopped.

    :meth:`run` returns after a graceful or immediate stop, or raises
    :class:`~aiowsgi.importer.AppImportError` / :class:`WorkerBootError` when the very first
    workers cannot start.  ``on_ready`` is called once, when the first worker is serving.
    """

    def __init__(self, app: Union[WSGIApplication, str], config: Config,
                 sockets: List[socket.socket], access_log: Optional[AccessLogFunc],
                 on_ready: Callable[[], None], server: Any = None, made: bool = False,
                 metrics_socket: Optional[socket.socket] = None) -> None:
        self.app = app
        self.made = made  # app is the app itself, imported here (--preload)
        self.config = config
        self.sockets = sockets
        self.access_log = access_log
        self.on_ready: Optional[Callable[[], None]] = on_ready
        self.server = server  # what hooks receive as ``server`` (the aiowsgi.Server)
        self.metrics = Metrics(metrics_socket, _core.__version__) if metrics_socket else None
        self.watcher: Optional[Watcher] = None  # --reload, while run() runs
        self._changed: List[str] = []  # --reload: files changed, waiting to settle
        self._reload_at = 0.0
        self.workers: Dict[int, Child] = {}
        self.generation = 0
        # "graceful", "immediate", "reload", "reopen"
        self._commands: Deque[str] = collections.deque()
        # Pipes, opened by run(): a self-pipe that wakes the loop, and a "life" pipe that is
        # never written: a worker sees EOF on it when the master is gone, even by SIGKILL.
        self._wake_r = self._wake_w = self._life_r = self._life_w = -1
        self._shutdown: Optional[str] = None  # None while serving, else "graceful"/"immediate"
        self._deadline = 0.0   # monotonic time at which remaining workers get SIGKILL
        self._ever_booted = False
        self._respawn_delay = 0.0
        self._respawn_at = 0.0
        self._fatal: Optional[Exception] = None

    # -- commands: the only methods other threads and signal handlers call ----------------

    def stop(self, graceful: bool = True) -> None:
        """Ask :meth:`run` to stop; safe from any thread and from signal handlers."""
        self._command("graceful" if graceful else "immediate")

    def reload(self) -> None:
        """Ask :meth:`run` to replace every worker, one by one."""
        self._command("reload")

    def reopen_logs(self) -> None:
        """Ask :meth:`run` to have the access-log file reopened, here and in every worker."""
        self._command("reopen")

    def _command(self, command: str) -> None:
        self._commands.append(command)
        self._wake()

    def _wake(self) -> None:
        if self._wake_w < 0:
            return  # not running: run() looks at the commands when it starts
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is pending anyway) or already closed

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._command("reload")
        elif signum == signal.SIGUSR1:
            self._command("reopen")
        elif signum == signal.SIGQUIT or (signum == signal.SIGINT and self._shutdown):
            self._command("immediate")
        elif signum in (signal.SIGTERM, signal.SIGINT):
            self._command("graceful")
        else:  # SIGCHLD: a worker ended; reap it now rather than at the next poll
            self._wake()

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP,
                   signal.SIGUSR1, signal.SIGCHLD)
        previous = {}
        self._wake_r, self._wake_w = os.pipe()
        self._life_r, self._life_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        try:
            if threading.current_thread() is threading.main_thread():
                previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
            if self.config.reload:
                self._start_watching()
            hooks.call(self.config.when_ready, "when_ready", self.server)
            self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all(signal.SIGKILL)  # only if the loop itself failed
            self._reap(block=True)
            if self.metrics is not None:
                self.metrics.close()
            if self.watcher is not None:
                self.watcher.close()
            fds = (self._wake_r, self._wake_w, self._life_r, self._life_w)
            self._wake_r = self._wake_w = self._life_r = self._life_w = -1
            for fd in fds:
                os.close(fd)
        if self._fatal is not None:
            raise self._fatal

    def _loop(self) -> None:
        while True:
            self._run_commands()
            self._reap()
            if self._shutdown is not None:
                if not self.workers:
                    return
                if time.monotonic() >= self._deadline:
                    self._kill_all(signal.SIGKILL)
            else:
                self._spawn_missing()
                self._reload_step()
                self._check_timeouts()
                self._check_rss()
                self._check_changes()
            self._wait(POLL_INTERVAL)

    def _run_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            if command == "reopen":
                if isinstance(self.access_log, AccessLog):
                    self.access_log.reopen()
                self._kill_all(signal.SIGUSR1)
            elif command == "reload":
                if self._shutdown is None:
                    self.generation += 1
                    error_log.info("Reloading: replacing the workers one by one")
                    hooks.call(self.config.on_reload, "on_reload", self.server)
            elif command == "immediate" or (command == "graceful" and self._shutdown is None):
                self._begin_shutdown(command)

    def _begin_shutdown(self, how: str) -> None:
        if self._shutdown is None and self._fatal is None:
            error_log.info("Shutting down %s", "gracefully" if how == "graceful" else "now")
        self._shutdown = how
        for sock in self.sockets:  # the workers close theirs: new connections are refused
            sock.close()
        if how == "graceful":
            self._deadline = time.monotonic() + self.config.graceful_timeout + 1.0
            self._signal_all(signal.SIGTERM)
        else:
            self._deadline = time.monotonic() + IMMEDIATE_KILL_DELAY
            self._signal_all(signal.SIGQUIT)

    def _wait(self, timeout: float) -> None:
        """Sleep until a signal, a command, a boot message, a scrape, a changed file (with
        --reload) or ``timeout``."""
        readers: List[Any] = [self._wake_r]
        readers += [w.boot_pipe for w in self.workers.values() if w.boot_pipe >= 0]
        readers += [w.modules_pipe for w in self.workers.values() if w.modules_pipe >= 0]
        writers: List[Any] = []
        if self.watcher is not None:
            readers.append(self.watcher)
            if self._changed:
                timeout = min(timeout, max(0.0, self._reload_at - time.monotonic()))
        if self.metrics is not None:
            readers += self.metrics.readers()
            writers += self.metrics.writers()
            deadline = self.metrics.timeout()
            timeout = timeout if deadline is None else min(timeout, deadline)
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if self._wake_r in readable:
            try:
                while os.read(self._wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        for worker in list(self.workers.values()):
            if worker.boot_pipe in readable:
                self._read_boot_pipe(worker)
            if worker.modules_pipe in readable:
                self._read_modules_pipe(worker)
        if self.watcher is not None and self.watcher in readable:
            self._on_changes(self.watcher.changed())
        if self.metrics is not None:
            self.metrics.serve(readable, writable, self._metrics_sources)

    def _metrics_sources(self) -> Tuple[List[mmap.mmap], int, int]:
        """What a scrape is rendered from: the live workers' blocks, their number, their
        resident memory in bytes."""
        blocks = [w.metrics for w in self.workers.values() if w.metrics is not None]
        return blocks, len(self.workers), sum(map(_rss, self.workers))

    # -- workers ---------------------------------------------------------------------------

    def _spawn_missing(self) -> None:
        if time.monotonic() < self._respawn_at:
            return
        active = [w for w in self.workers.values() if not w.stopping]
        for _ in range(self.config.workers - len(active)):
            self._spawn()

    def _reload_step(self) -> None:
        """One step of a rolling restart: start one new worker, and once it serves, retire one
        old worker; at most one worker is booting, so capacity never drops."""
        active = [w for w in self.workers.values() if not w.stopping]
        old = [w for w in active if w.generation < self.generation]
        if not old or any(not w.booted for w in active):
            return
        if len(active) > self.config.workers:
            self._retire(old[0])
        elif time.monotonic() >= self._respawn_at:
            self._spawn()

    def _back_off(self) -> None:
        """Start no new worker for a while (doubling up to MAX_RESPAWN_DELAY while starting
        workers keeps failing; reset when one boots)."""
        self._respawn_delay = min(MAX_RESPAWN_DELAY, max(0.5, self._respawn_delay * 2))
        self._respawn_at = time.monotonic() + self._respawn_delay

    def _retire(self, worker: Child) -> None:
        worker.stopping = True
        _kill(worker.pid, signal.SIGTERM)

    def _check_rss(self) -> None:
        """--max-rss: a worker above it is replaced as in a reload: a new worker starts, and
        once it serves the old one is stopped gracefully (it finishes its requests)."""
        limit = self.config.max_rss * 1024 * 1024
        if not limit:
            return
        for worker in self.workers.values():
            if worker.booted and not worker.stopping and worker.generation >= 0:
                rss = _rss(worker.pid)
                if rss > limit:
                    error_log.warning("Worker %d uses %d MB, more than --max-rss %d; replacing "
                                      "it", worker.pid, rss // 2**20, self.config.max_rss)
                    worker.generation, worker.replace_for = -1, "max_rss"

    # -- --reload ------------------------------------------------------------------------------

    def _start_watching(self) -> None:
        self.watcher = Watcher()
        self.watcher.watch(self.config.reload_extra_file)
        for path in self.config.reload_extra_file:
            if not self.watcher.watching(path):
                error_log.warning("--reload-extra-file %s: its directory cannot be watched",
                                  path)

    def _read_modules_pipe(self, worker: Child) -> None:
        """Files of modules a worker imported: watch them."""
        try:
            data = os.read(worker.modules_pipe, 65536)
        except BlockingIOError:
            return
        if not data:
            os.close(worker.modules_pipe)
            worker.modules_pipe = -1
            return
        *lines, worker.modules = (worker.modules + data).split(b"\n")
        if self.watcher is not None:
            self.watcher.watch(os.fsdecode(line) for line in lines if line)

    def _on_changes(self, paths: List[str]) -> None:
        """Files changed: reload once they have been quiet for RELOAD_SETTLE seconds (an
        editor's save is often several writes)."""
        if paths:
            self._changed += [path for path in paths if path not in self._changed]
            self._reload_at = time.monotonic() + RELOAD_SETTLE

    def _check_changes(self) -> None:
        if not self._changed or time.monotonic() < self._reload_at:
            return
        changed, self._changed = self._changed, []
        errors = syntax_errors(changed)
        if errors:
            for line in errors:
                error_log.error("Not reloading: SyntaxError in %s", line)
            error_log.error("The running workers keep serving; fix the code to reload")
            return
        error_log.info("Changed: %s", ", ".join(changed))
        self._command("reload")

    def _check_timeouts(self) -> None:
        if self.config.timeout <= 0:
            return
        limit = int(self.config.timeout * 1e9)
        now = time.monotonic_ns()  # CLOCK_MONOTONIC, the clock the core writes
        for worker in self.workers.values():
            # one slot per app thread, and the loop's (threads.c); the oldest call counts
            began = min((b for (b,) in HEARTBEAT.iter_unpack(worker.heartbeat) if b), default=0)
            if began and now - began > limit and not worker.timed_out:
                error_log.error("Worker %d: an app call has run for more than %gs (--timeout); "
                                "killing the worker", worker.pid, self.config.timeout)
                worker.timed_out = True
                _kill(worker.pid, signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for worker in self.workers.values():
            worker.stopping = True
            _kill(worker.pid, signum)

    def _kill_all(self, signum: int) -> None:
        for worker in self.workers.values():
            _kill(worker.pid, signum)

    def _spawn(self) -> None:
        # anonymous and MAP_SHARED: seen by both; a slot per app thread and the loop's
        heartbeat = mmap.mmap(-1, HEARTBEAT.size * (self.config.threads + 1))
        metrics = new_block() if self.metrics is not None else None
        read_end, write_end = os.pipe()
        modules_r, modules_w = os.pipe() if self.config.reload else (-1, -1)
        pipes = [fd for fd in (read_end, write_end, modules_r, modules_w) if fd >= 0]
        max_requests = with_jitter(self.config.max_requests)
        try:
            pid = os.fork()
        except OSError as exc:  # out of processes or memory: try again later
            error_log.error("Cannot start a worker: %s", exc)
            for fd in pipes:
                os.close(fd)
            for block in (heartbeat, metrics):
                if block is not None:
                    block.close()
            self._back_off()
            return
        if pid == 0:  # pragma: no cover - the child: run_forked() ends the process
            run_forked(ForkedWorker(
                self.app, self.config, self.sockets, self.access_log, heartbeat,
                boot_pipe=write_end, life_pipe=self._life_r, max_requests=max_requests,
                server=self.server, metrics=metrics, made=self.made, modules_pipe=modules_w,
                inherited=self._inherited_by_children() + [fd for fd in (read_end, modules_r)
                                                           if fd >= 0]))
        for fd in (write_end, modules_w):
            if fd >= 0:
                os.close(fd)
        for fd in (read_end, modules_r):
            if fd >= 0:
                os.set_blocking(fd, False)
        self.workers[pid] = Child(pid, self.generation, heartbeat, read_end, metrics=metrics,
                                  modules_pipe=modules_r)
        error_log.debug("Started worker %d", pid)

    def _inherited_by_children(self) -> List[Any]:
        """What a worker forked now inherits and must close: the master's wake-up pipe, the
        write end of the life pipe, the metrics endpoint's sockets, the inotify descriptor,
        and the other workers' maps and pipes."""
        inherited: List[Any] = [self._wake_r, self._wake_w, self._life_w]
        if self.metrics is not None:
            inherited += self.metrics.sockets()
        if self.watcher is not None:
            inherited.append(self.watcher.fileno())
        for child in self.workers.values():
            inherited += [thing for thing in (child.heartbeat, child.metrics) if thing]
            inherited += [fd for fd in (child.boot_pipe, child.modules_pipe) if fd >= 0]
        return inherited

    def _read_boot_pipe(self, worker: Child) -> None:
        while worker.boot_pipe >= 0:
            try:
                data = os.read(worker.boot_pipe, 4096)
            except BlockingIOError:
                break  # (a child the app forked during import may hold the pipe open)
            if data:
                worker.message += data
                continue
            os.close(worker.boot_pipe)
            worker.boot_pipe = -1
        if worker.message == BOOT_READY and not worker.booted:
            self._on_booted(worker)

    def _on_booted(self, worker: Child) -> None:
        worker.booted = True
        self._respawn_delay = 0.0
        if not self._ever_booted:
            self._ever_booted = True
            if self.on_ready is not None:
                self.on_ready()
        error_log.debug("Worker %d is serving", worker.pid)

    def _reap(self, block: bool = False) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
                continue
            if pid == 0:
                return
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._read_boot_pipe(worker)
                if worker.modules_pipe >= 0:
                    os.close(worker.modules_pipe)
                worker.heartbeat.close()
                if worker.metrics is not None:
                    assert self.metrics is not None
                    self.metrics.retire(worker.metrics)
                    worker.metrics.close()
                self._on_exit(worker, status)

    def _on_exit(self, worker: Child, status: int) -> None:
        if self._shutdown is not None:
            return
        if not worker.booted:
            reason = "boot_failed"
            self._on_boot_failure(worker, status)
        elif worker.timed_out:
            reason = "timeout"  # already logged; _spawn_missing replaces it
        elif worker.stopping:
            reason = worker.replace_for
            error_log.debug("Worker %d stopped", worker.pid)
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_OK:
            reason = "max_requests" if self.config.max_requests else "exited"
            error_log.info("Worker %d exited%s; starting a new one", worker.pid,
                           " after its max requests" if self.config.max_requests else "")
        else:
            reason = "died"
            error_log.warning("Worker %d died (%s); starting a new one", worker.pid,
                              _describe_status(status))
        if self.metrics is not None:
            self.metrics.count_restart(reason)

    def _on_boot_failure(self, worker: Child, status: int) -> None:
        kind, text = worker.message[:1], worker.message[1:].decode("utf-8", "replace")
        if kind == BOOT_IMPORT_ERROR and isinstance(self.app, str):
            failure: Exception = AppImportError(self.app, text)
        elif kind == BOOT_OTHER_ERROR:
            failure = WorkerBootError("worker failed to boot: " + text)
        else:
            failure = WorkerBootError("worker %d failed to boot (%s)"
                                      % (worker.pid, _describe_status(status)))
        if not self._ever_booted:  # nothing ever served: give up, the caller reports it
            self._fatal = failure
            self._begin_shutdown("immediate")
            return
        error_log.error("%s", failure)
        if worker.generation == self.generation and any(
                w.generation < self.generation for w in self.workers.values()):
            error_log.error("Reload failed; the running workers keep serving")
            for other in self.workers.values():
                other.generation = self.generation
        self._back_off()


def with_jitter(max_requests: int) -> int:
    """A worker's own ``max_requests``: up to 10 % more, so that workers started together do not
    restart together, and no more than the core accepts.  0 (off) stays 0."""
    jittered = max_requests + random.randint(0, max_requests // 10)
    _, most = limits("max_requests")
    return jittered if most is None else min(jittered, int(most))


def _rss(pid: int) -> int:
    """The resident memory of process ``pid`` in bytes (0 once it is gone)."""
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already gone; reaped at the next turn


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = str(signum)
        return "killed by " + name
    return "exit code %d" % os.WEXITSTATUS(status)

