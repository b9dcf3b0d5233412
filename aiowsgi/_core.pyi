"""Type stubs for ``aiowsgi._core``, the C event loop and HTTP/WSGI engine.

This is the boundary between the C core (per request) and the Python layer (per process):
the Python layer binds sockets, forks workers, handles signals and logging, and hands
listening file descriptors plus options to :class:`Server`.
"""

from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

# A WSGI application (PEP 3333); kept loose on purpose, apps are duck-typed.
WSGIApp = Callable[..., Iterable[bytes]]

# log(level, message, exc): level is a `logging` level number (logging.ERROR, ...);
# exc is the exception being reported (with its __traceback__) or None.
LogFunc = Callable[[int, str, Optional[BaseException]], Any]

# access_log(environ, status, response_body_bytes, duration_seconds): called once per
# finished request (also for 4xx/5xx answers the server gives itself; environ is then a
# minimal dict with REQUEST_METHOD, RAW_URI, SERVER_PROTOCOL, REMOTE_ADDR when known).
AccessLogFunc = Callable[[Dict[str, Any], int, int, float], Any]

__version__: str
# {option: (default, minimum, maximum)} for the numeric and boolean keyword arguments of
# Server (seconds as float, sizes as int, flags as bool): the C core's one table of them.
OPTIONS: Dict[str, Tuple[Any, Any, Any]]
STREAMING_ATTR: str  # "__aiowsgi_streaming_input__": the attribute streaming_input() sets
LLHTTP_VERSION_MAJOR: int
STATUS_REASONS: Dict[int, str]

# --metrics-bind: a worker's counters live in a block of METRICS_SIZE bytes (Server's
# ``metrics=``) that metrics_read() turns into {"requests": [count for each status class
# (METRICS_CLASSES) and method (METRICS_METHODS), class-major], "duration": [count per bucket:
# the upper bounds METRICS_BUCKETS in seconds, then +Inf], "duration_ns": sum, "body_bytes",
# "connections", "in_flight", "queued"} (the last three are gauges, the others counters).
METRICS_SIZE: int
METRICS_METHODS: Tuple[str, ...]
METRICS_CLASSES: Tuple[str, ...]
METRICS_BUCKETS: Tuple[float, ...]
def metrics_read(block: Any) -> Dict[str, Any]: ...

class ClientDisconnected(OSError):
    """The client went away while the app was reading a streamed request body."""

class RequestTooLarge(Exception):
    """The streamed request body exceeded max_body_size."""

class FileWrapper:
    """``environ["wsgi.file_wrapper"]``: iterates ``filelike.read(blksize)``; sent with
    sendfile(2) when ``filelike.fileno()`` is a regular file."""
    filelike: Any
    blksize: int
    def __init__(self, filelike: Any, blksize: int = 8192) -> None: ...
    def __iter__(self) -> "FileWrapper": ...
    def __next__(self) -> bytes: ...
    def close(self) -> None: ...

class Server:
    """One event loop serving ``app`` on already-listening sockets.

    ``sockets`` are file descriptors of bound, listening sockets (TCP v4/v6 or unix). The core
    watches its own ``dup()`` of each and closes those duplicates as soon as it stops accepting
    (stop(), max_requests, or run() ending), so the caller may close its sockets at any time:
    once every process has closed its copies, new connections are refused.
    Two Server objects in one process share nothing mutable.
    """

    def __init__(
        self,
        app: WSGIApp,
        sockets: Sequence[int],
        *,
        keepalive: float = 5.0,
        header_timeout: float = 10.0,
        max_header_size: int = 65536,
        max_body_size: int = 1073741824,
        spool_threshold: int = 1048576,
        stream_input: bool = False,
        max_requests: int = 0,
        threads: int = 1,
        max_queue: int = 128,
        url_scheme: str = "http",
        forwarded_allow_ips: Sequence[str] = ("127.0.0.1", "::1"),
        multiprocess: bool = False,
        static_max_age: int = 60,
        static: Union[Mapping[str, str], Sequence[Tuple[str, str]]] = (),
        errors: Any = None,            # the wsgi.errors stream; None: sys.stderr
        log: Optional[LogFunc] = None,  # None: tracebacks are printed to sys.stderr
        access_log: Optional[AccessLogFunc] = None,
        heartbeat: Any = None,
        metrics: Any = None,
    ) -> None:
        """``heartbeat``: None, or a writable buffer (e.g. an ``mmap``) of at least
        ``8 * (threads + 1)`` bytes: one native uint64 slot for the loop's thread (slot 0) and
        one per app thread. While the app (or its iterable's ``__next__``/``close``) runs on a
        thread, the core stores in its slot the CLOCK_MONOTONIC time in nanoseconds at which
        that call began; 0 when no app code runs there. The master reads every slot to enforce
        ``--timeout``.

        ``threads``: 1, the loop calls the app; N > 1, app calls run on N threads while the
        loop (which then holds no GIL) serves every connection. ``max_queue``: with threads,
        complete requests that may wait for a thread before the loop stops reading new ones.

        ``metrics``: None, or a writable, aligned buffer of ``METRICS_SIZE`` bytes, zeroed
        (e.g. an anonymous ``mmap`` the master shares): every request answered, by the app or
        by the server itself, is counted there, with relaxed atomic adds (see metrics_read).

        ``max_requests``: after this many requests (0: never) the server stops gracefully and
        :meth:`run` returns; the worker then exits and is replaced.

        ``static``: URL prefixes (``"/static"``, as matched against the percent-decoded path,
        UTF-8) and the directories whose files are served there by the core itself, never
        calling ``app``; ``static_max_age`` is their ``Cache-Control`` max-age in seconds. A
        prefix that is not a URL path, given twice, or a directory that cannot be opened
        raises ValueError.
        """

    def run(self) -> None:
        """Serve until :meth:`stop` (or max_requests); returns after the graceful drain.

        The GIL is released while waiting for events. Python signal handlers run on the loop
        thread between events; if one raises (KeyboardInterrupt), every connection is closed
        and the exception propagates out of run()."""

    def stop(self, graceful: bool = True, timeout: float = 30.0) -> None:
        """Ask the loop to stop; safe from other threads and signal handlers.

        graceful: stop accepting, close idle connections, let in-flight requests finish (the
        connection is closed after its current response) for at most ``timeout`` seconds,
        then close the rest. Not graceful: close everything at the next loop turn."""

    @property
    def requests(self) -> int:
        """Requests answered so far."""

    @property
    def connections(self) -> int:
        """Connections open right now."""

    @property
    def sentinel(self) -> object:
        """The would-block sentinel of the streaming input protocol (one per server)."""
