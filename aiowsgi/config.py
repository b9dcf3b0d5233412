"""Every option of the server, its default and its validation: the one home for all three.

``Config`` is what the command line (``cli.py``), ``aiowsgi.serve`` and ``aiowsgi.Server`` all
build; the CLI generates its options from the field metadata here, so a default is written
once.  The options the C core parses (``core=True``) are passed to it by :meth:`Config.
core_options`, and their limits are the core's own table (``aiowsgi._core.OPTIONS``), so that
Config cannot accept what the core refuses; ``tests/test_option_table.py`` checks that the
defaults agree.  This module parses bind addresses but never opens a socket (``server.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from typing import (Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypedDict,
                    Union)

from . import _core
from .hooks import HOOKS, Hook, check as check_hook
from .log import DEFAULT_ACCESS_FORMAT, compile_access_format

DEFAULT_BIND = "127.0.0.1:8000"

# The callables the core reports through (see aiowsgi/_core.pyi).
LogFunc = Callable[[int, str, Optional[BaseException]], Any]
AccessLogFunc = Callable[[Dict[str, Any], int, int, float], Any]
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
Number = Union[int, float]


class ConfigError(ValueError):
    """An option has an invalid value; the message names the option the way the CLI spells it."""


@dataclass(frozen=True)
class BindAddress:
    """One parsed ``--bind`` value.

    ``kind`` is ``"tcp"`` (``host``, ``port``), ``"unix"`` (``path``) or ``"fd"`` (``fd``: an
    inherited, already bound socket).  ``text`` is the value as the user wrote it, for messages.
    """

    kind: str
    text: str
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1


def parse_bind(text: str) -> BindAddress:
    """Parse ``HOST:PORT``, ``[IPV6]:PORT``, ``unix:PATH`` or ``fd://N``; raise ConfigError."""
    if not isinstance(text, str) or not text:
        raise ConfigError("invalid --bind %r: expected HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N"
                          % (text,))
    if text.startswith("unix:"):
        path = text[len("unix:"):]
        if not path:
            raise ConfigError("invalid --bind %r: unix: needs a path" % text)
        return BindAddress("unix", text, path=path)
    if text.startswith("fd://"):
        number = text[len("fd://"):]
        if not number.isdigit():
            raise ConfigError("invalid --bind %r: fd:// needs a file descriptor number" % text)
        return BindAddress("fd", text, fd=int(number))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":") or not host:
            raise ConfigError("invalid --bind %r: expected [IPV6]:PORT" % text)
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ConfigError("invalid --bind %r: expected HOST:PORT, [IPV6]:PORT, unix:PATH "
                              "or fd://N" % text)
        if ":" in host:
            raise ConfigError("invalid --bind %r: write IPv6 addresses in brackets, "
                              "[%s]:%s" % (text, host, port_text))
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError("invalid --bind %r: the port must be a number from 0 to 65535" % text)
    return BindAddress("tcp", text, host=host or "0.0.0.0", port=int(port_text))


StaticMounts = Tuple[Tuple[str, str], ...]
PathText = Union[str, os.PathLike[str]]
# What ``static=`` accepts: {prefix: directory}; or one, or a sequence, of "PREFIX=DIR" strings
# (the command line's spelling) and (prefix, directory) tuples.
StaticOption = Union[Mapping[str, PathText], str, Tuple[str, PathText],
                     Sequence[Union[str, Tuple[str, PathText]]]]


def parse_static(value: StaticOption, base: Optional[str] = None) -> StaticMounts:
    """Normalise ``static=`` to ((prefix, absolute directory), ...); a prefix loses its trailing
    slash (``"/"`` stays).  Relative directories are taken from ``base`` (the ``--chdir``
    directory; default: the current one).  Raise ConfigError for a prefix that is not a URL
    path, one given twice, or a directory that is not one."""
    if isinstance(value, Mapping):
        items: List[Any] = list(value.items())
    elif isinstance(value, str) or _is_mount(value):
        items = [value]
    elif isinstance(value, Iterable):
        items = list(value)
    else:
        raise ConfigError("invalid --static %r: expected URL_PREFIX=DIRECTORY" % (value,))
    mounts: Dict[str, str] = {}
    for item in items:
        if isinstance(item, str) and "=" in item:
            prefix, _, directory = item.partition("=")
        elif _is_mount(item):
            prefix, directory = item
        else:
            raise ConfigError("invalid --static %r: expected URL_PREFIX=DIRECTORY" % (item,))
        text = "%s=%s" % (prefix, os.fspath(directory))
        if not prefix.startswith("/") or "\0" in prefix or any(
                segment in ("", ".", "..") for segment in prefix.rstrip("/").split("/")[1:]):
            raise ConfigError("invalid --static %r: the prefix must be a URL path such as "
                              "/static" % text)
        prefix = prefix.rstrip("/") or "/"
        path = os.path.abspath(os.path.join(base or os.getcwd(), os.fspath(directory)))
        if prefix in mounts:
            raise ConfigError("invalid --static %r: %s is mounted twice" % (text, prefix))
        if not os.path.isdir(path):
            raise ConfigError("invalid --static %r: %s is not a directory" % (text, path))
        mounts[prefix] = path
    return tuple(mounts.items())


def _is_mount(value: Any) -> bool:
    """A (prefix, directory) tuple: ("/static", "public") is one mount, not two."""
    return isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str) \
        and "=" not in value[0]


def _option(default: Any, help: str, *flags: str, metavar: Optional[str] = None,
            cli_default: Optional[str] = None, core: bool = False, repeatable: bool = False,
            minimum: Optional[Number] = None, maximum: Optional[Number] = None) -> Any:
    """A Config field; ``flags`` and ``help`` are what cli.py turns into an argparse option.

    ``core``: a keyword argument of ``aiowsgi._core.Server`` of the same name, passed through
    by :meth:`Config.core_options`; if numeric, its limits are the core's.  ``repeatable``: the
    command line option may be given several times (a list of its values).  Other numeric
    options (an int default: a whole number; a float: seconds) are checked against
    ``minimum`` and ``maximum`` (None: unbounded).
    """
    meta = {"flags": flags, "help": help, "metavar": metavar, "cli_default": cli_default,
            "core": core, "repeatable": repeatable, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    """Every server option with its default (SPEC section 2); built with keyword arguments.

    Values are validated and normalised in ``__post_init__`` (for example ``bind`` becomes a
    tuple of strings and ``forwarded_allow_ips`` accepts ``"a,b"``); an invalid value raises
    :class:`ConfigError`.
    """

    bind: Optional[Tuple[str, ...]] = _option(
        None, "address to listen on, repeatable: HOST:PORT, [IPV6]:PORT, unix:PATH or fd://N",
        "-b", "--bind", metavar="ADDR", repeatable=True,
        cli_default=DEFAULT_BIND + ", or the sockets systemd passes in LISTEN_FDS")
    workers: int = _option(
        1, "worker processes sharing the listening sockets; the master restarts a dead worker",
        "-w", "--workers", metavar="N", minimum=1)
    backlog: int = _option(2048, "listen backlog", "--backlog", metavar="N", minimum=1)
    keepalive: float = _option(
        5.0, "idle time before a kept-alive connection is closed", "--keepalive",
        metavar="SECONDS", core=True)
    header_timeout: float = _option(
        10.0, "time allowed to receive a complete request head", "--header-timeout",
        metavar="SECONDS", core=True)
    max_header_size: int = _option(
        65536, "limit on the request line and headers together (larger: 431)",
        "--max-header-size", metavar="BYTES", core=True)
    max_body_size: int = _option(
        1073741824, "limit on a request body (larger: 413)", "--max-body-size", metavar="BYTES",
        core=True)
    spool_threshold: int = _option(
        1048576, "buffered request bodies above this go to a temporary file",
        "--spool-threshold", metavar="BYTES", core=True)
    stream_input: bool = _option(
        False, "every request uses the streaming input protocol", "--stream-input", core=True)
    max_requests: int = _option(
        0, "a worker exits and is replaced after N requests, plus up to 10%% jitter (0: off)",
        "--max-requests", metavar="N", core=True)
    timeout: float = _option(
        30.0, "a worker whose app call has not returned for this long is killed and replaced "
        "(0: off)", "--timeout", metavar="SECONDS", minimum=0)
    graceful_timeout: float = _option(
        30.0, "time to finish in-flight requests on shutdown", "--graceful-timeout",
        metavar="SECONDS", minimum=0)
    access_log: Union[str, AccessLogFunc, None] = _option(
        None, "write one line per request (combined log format plus duration) to FILE; "
        "'-' is stdout", "--access-log", metavar="FILE", cli_default="off")
    access_log_format: str = _option(
        DEFAULT_ACCESS_FORMAT, "the access-log line, with gunicorn's atoms: %%(h)s %%(l)s "
        "%%(u)s %%(t)s %%(r)s %%(m)s %%(U)s %%(q)s %%(H)s %%(s)s %%(B)s %%(b)s %%(f)s %%(a)s "
        "%%(T)s %%(M)s %%(D)s %%(L)s %%(p)s %%({header}i)s %%({header}o)s %%({name}e)s",
        "--access-log-format", metavar="FMT", cli_default="combined plus duration")
    log_level: str = _option(
        "info", "error log level (the error log goes to stderr): " + ", ".join(LOG_LEVELS),
        "--log-level", metavar="LEVEL")
    forwarded_allow_ips: Tuple[str, ...] = _option(
        ("127.0.0.1", "::1"), "comma-separated peer addresses trusted for X-Forwarded-For "
        "and X-Forwarded-Proto", "--forwarded-allow-ips", metavar="LIST", core=True)
    threads: int = _option(
        1, "app calls run on a pool of N threads per worker while the event loop goes on "
        "serving every connection; 1: the loop calls the app itself", "--threads", metavar="N",
        core=True)
    max_queue: int = _option(
        128, "with --threads N > 1: complete requests waiting for a thread, per worker, before "
        "the loop stops reading new requests", "--max-queue", metavar="N", core=True)
    static: StaticMounts = _option(
        (), "serve the files under DIRECTORY at URL_PREFIX from the C core, never entering "
        "Python; repeatable", "--static", metavar="URL_PREFIX=DIRECTORY", cli_default="none",
        core=True, repeatable=True)
    static_max_age: int = _option(
        60, "Cache-Control max-age of static files (names with a content hash, such as "
        "app.3f2a1b9c.js: a year, immutable)", "--static-max-age", metavar="SECONDS", core=True)
    reload: bool = _option(
        False, "development: restart the workers when the source file of a module they "
        "imported changes (inotify)", "--reload")
    reload_extra_file: Tuple[str, ...] = _option(
        (), "with --reload, also restart the workers when FILE changes; repeatable",
        "--reload-extra-file", metavar="FILE", cli_default="none", repeatable=True)
    metrics_bind: Optional[str] = _option(
        None, "serve Prometheus metrics at /metrics on ADDR (HOST:PORT or unix:PATH), from the "
        "master, summed over the workers", "--metrics-bind", metavar="ADDR", cli_default="off")
    max_rss: int = _option(
        0, "a worker whose resident memory passes MB megabytes is replaced gracefully (0: off)",
        "--max-rss", metavar="MB", minimum=0)
    preload: bool = _option(
        False, "import the app in the master before forking the workers (memory shared "
        "copy-on-write; SIGHUP then restarts the workers with the code already loaded)",
        "--preload")
    factory: bool = _option(
        False, "APP names a factory: call it with no arguments to make the app", "--factory")
    chdir: Optional[str] = _option(
        None, "change to DIR before binding and importing the app", "--chdir", metavar="DIR",
        cli_default="the current directory")
    # Hooks (config file or Python API; README.rst, "Hooks"): called where gunicorn calls them.
    on_starting: Optional[Hook] = _option(
        None, "on_starting(server): before the sockets are bound; if it raises, the server "
        "does not start (exit status 1)")
    when_ready: Optional[Hook] = _option(
        None, "when_ready(server): the sockets are listening, before the workers start")
    on_reload: Optional[Hook] = _option(
        None, "on_reload(server): in the master, when a reload begins (SIGHUP, --reload)")
    post_fork: Optional[Hook] = _option(
        None, "post_fork(server, worker): in a new worker, before it imports the app")
    post_worker_init: Optional[Hook] = _option(
        None, "post_worker_init(worker): in a worker, once the app is imported")
    worker_exit: Optional[Hook] = _option(
        None, "worker_exit(server, worker): in a worker that stopped serving, before it exits")
    on_exit: Optional[Hook] = _option(
        None, "on_exit(server): in the master, just before it exits")
    pre_request: Optional[Hook] = _option(
        None, "pre_request(worker, environ): before each call of the app")
    post_request: Optional[Hook] = _option(
        None, "post_request(worker, environ, status): after each response the app gave")
    # Python API only (no flags): replace the logging plumbing, e.g. when embedding the server.
    log: Optional[LogFunc] = _option(
        None, "log(level, message, exc) for the core's messages; default: aiowsgi.error")
    errors: Any = _option(
        None, "the wsgi.errors stream; default: lines to aiowsgi.error")

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise through the back door, once, here
        if self.bind is not None:
            binds = (self.bind,) if isinstance(self.bind, str) else tuple(self.bind)
            if not binds:
                raise ConfigError("--bind needs at least one address")
            for text in binds:
                parse_bind(text)
            set_(self, "bind", binds)
        for option in options():  # the kind of a value is its default's
            kind = type(default_of(option))
            if kind is bool:
                set_(self, option.name, bool(getattr(self, option.name)))
            elif kind is int or kind is float:  # a whole number, or seconds
                _check_number(self, option.name, seconds=kind is float)
        level = str(self.log_level).lower()
        if level not in LOG_LEVELS:
            raise ConfigError("invalid --log-level %r: expected one of %s"
                              % (self.log_level, ", ".join(LOG_LEVELS)))
        set_(self, "log_level", level)
        ips = self.forwarded_allow_ips
        if isinstance(ips, str):
            ips = tuple(ip.strip() for ip in ips.split(",") if ip.strip())
        set_(self, "forwarded_allow_ips", tuple(ips))
        if self.access_log is not None and not callable(self.access_log) and (
                not isinstance(self.access_log, str) or not self.access_log):
            raise ConfigError("invalid --access-log %r: expected a file name or '-'"
                              % (self.access_log,))
        if self.log is not None and not callable(self.log):
            raise ConfigError("invalid log=%r: expected a callable" % (self.log,))
        if self.chdir is not None and not os.path.isdir(self.chdir):
            raise ConfigError("invalid --chdir %r: not a directory" % self.chdir)
        set_(self, "static", parse_static(self.static, self.chdir))
        self._check_operations()

    def _check_operations(self) -> None:
        """The options of SPEC section 9: reloading, metrics, the access-log format, hooks."""
        files = self.reload_extra_file
        files = (files,) if isinstance(files, str) else tuple(files)
        if not all(isinstance(path, str) and path for path in files):
            raise ConfigError("invalid --reload-extra-file %r: expected file names" % (files,))
        object.__setattr__(self, "reload_extra_file", files)
        if self.reload and self.preload:
            raise ConfigError("--reload and --preload cannot be used together: with --preload "
                              "the workers are forked from the code the master loaded")
        if self.metrics_bind is not None:
            parse_bind(self.metrics_bind)
        try:
            compile_access_format(self.access_log_format)
        except ValueError as exc:
            raise ConfigError("invalid --access-log-format %r: %s"
                              % (self.access_log_format, exc)) from exc
        for name in HOOKS:
            hook = getattr(self, name)
            why = None if hook is None else check_hook(name, hook)
            if why:
                raise ConfigError("invalid %s hook %r: %s" % (name, hook, why))

    def hook(self, name: str) -> Optional[Hook]:
        """The hook ``name`` (one of :data:`aiowsgi.hooks.HOOKS`), or None."""
        return getattr(self, name)  # type: ignore[no-any-return]

    @property
    def log_level_number(self) -> int:
        """The ``logging`` level of ``log_level``."""
        return int(getattr(logging, self.log_level.upper()))

    def core_options(self) -> Dict[str, Any]:
        """The keyword arguments of ``aiowsgi._core.Server`` that come straight from options:
        those marked ``core``, and ``multiprocess``."""
        passed = {option.name: getattr(self, option.name)
                  for option in options() if option.metadata["core"]}
        passed["multiprocess"] = self.workers > 1
        return passed


class Options(TypedDict, total=False):
    """The keyword arguments ``aiowsgi.serve`` and ``aiowsgi.Server`` accept besides ``bind``
    (for type checkers; the defaults and validation are Config's)."""

    workers: int
    backlog: int
    keepalive: float
    header_timeout: float
    max_header_size: int
    max_body_size: int
    spool_threshold: int
    stream_input: bool
    max_requests: int
    timeout: float
    graceful_timeout: float
    access_log: Union[str, AccessLogFunc, None]
    access_log_format: str
    log_level: str
    forwarded_allow_ips: Union[str, Sequence[str]]
    threads: int
    max_queue: int
    static: StaticOption
    static_max_age: int
    reload: bool
    reload_extra_file: Tuple[str, ...]
    metrics_bind: Optional[str]
    max_rss: int
    preload: bool
    factory: bool
    chdir: Optional[str]
    on_starting: Optional[Hook]
    when_ready: Optional[Hook]
    on_reload: Optional[Hook]
    post_fork: Optional[Hook]
    post_worker_init: Optional[Hook]
    worker_exit: Optional[Hook]
    on_exit: Optional[Hook]
    pre_request: Optional[Hook]
    post_request: Optional[Hook]
    log: Optional[LogFunc]
    errors: Any


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _check_number(config: Config, name: str, seconds: bool) -> None:
    """Check a numeric option against :func:`limits` (seconds: any number, stored as a float;
    else a whole number); NaN is never within them."""
    value = getattr(config, name)
    minimum, maximum = limits(name)
    if isinstance(value, bool) or not isinstance(value, (int, float) if seconds else int) \
            or not (minimum <= value and (maximum is None or value <= maximum)):
        raise ConfigError("invalid --%s %r: expected %s %s" % (
            _flag(name), value, "a number of seconds" if seconds else "a whole number",
            ">= %s" % _number(minimum) if maximum is None else
            "from %s to %s" % (_number(minimum), _number(maximum))))
    if seconds:
        object.__setattr__(config, name, float(value))


def _number(limit: Number) -> str:
    return "%d" % limit if limit == int(limit) else "%g" % limit


def options() -> Sequence["dataclasses.Field[Any]"]:
    """The fields of Config, in the order of SPEC section 2 (the CLI's order)."""
    return dataclasses.fields(Config)


def default_of(option: "dataclasses.Field[Any]") -> Any:
    """The default value of one of :func:`options`."""
    if option.default_factory is not dataclasses.MISSING:
        return option.default_factory()
    return option.default


def limits(name: str) -> Tuple[Number, Optional[Number]]:
    """(minimum, maximum) of the numeric option ``name``; maximum None: unbounded.

    For an option the C core parses, the core's own limits (``aiowsgi._core.OPTIONS``): Config
    accepts exactly what the core accepts.  For the others, those given in its field.
    """
    option = _FIELDS[name]
    if option.metadata["core"]:
        _, minimum, maximum = _core.OPTIONS[name]
        return minimum, maximum
    return option.metadata["minimum"], option.metadata["maximum"]


_FIELDS = {option.name: option for option in options()}
