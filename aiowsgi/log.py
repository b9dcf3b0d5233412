"""Logging: the ``aiowsgi.error`` and ``aiowsgi.access`` loggers and the callables the core gets.

The core reports through three objects made here: :func:`core_log` (``log=``), an
:class:`ErrorStream` (``errors=``, the ``wsgi.errors`` of every request) and an
:class:`AccessLog` (``access_log=``).  This module formats and writes lines; it knows nothing
about sockets or processes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import re
import sys
import time
from typing import IO, Any, Callable, Dict, Iterable, List, Mapping, Optional

ERROR_LOGGER = "aiowsgi.error"
ACCESS_LOGGER = "aiowsgi.access"

error_log = logging.getLogger(ERROR_LOGGER)
access_logger = logging.getLogger(ACCESS_LOGGER)

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


class _SysStreamHandler(logging.Handler):
    """Writes to ``sys.stderr`` or ``sys.stdout`` as they are at the time of the record (test
    runners and applications may swap them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.stream_name = name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream: IO[str] = getattr(sys, self.stream_name)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _AppendFileHandler(logging.Handler):
    """Appends each record as one line (one write) to a file, which :meth:`reopen` opens
    again by name: after log rotation moved it away, lines go to a new file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = os.path.abspath(path)  # the app may chdir
        self.file = self._open()

    def _open(self) -> IO[str]:
        return open(self.path, "a", encoding="utf-8", buffering=1)  # line buffered

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.file.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)

    def reopen(self) -> None:
        with self.lock or contextlib.nullcontext():
            new = self._open()
            old, self.file = self.file, new
            old.close()

    def close(self) -> None:
        self.file.close()
        super().close()


def setup_error_log(level: int) -> None:
    """Set the level of ``aiowsgi.error`` and, unless the application has given it handlers
    already, send it to stderr (not to the root logger, which the app may use for itself)."""
    error_log.setLevel(level)
    if not error_log.handlers:
        handler = _SysStreamHandler("stderr")
        handler.setFormatter(logging.Formatter(ERROR_FORMAT, DATE_FORMAT))
        error_log.addHandler(handler)
        error_log.propagate = False


def core_log(level: int, message: str, exc: Optional[BaseException]) -> None:
    """The core's ``log=`` callable: ``message`` at ``level``, with the traceback of ``exc``."""
    if exc is None:
        error_log.log(level, message)
    else:
        error_log.log(level, message, exc_info=(type(exc), exc, exc.__traceback__))


class ErrorStream:
    """``wsgi.errors``: a text stream whose lines go to the error log at ERROR level.

    Text is held until a newline (or :meth:`flush`) so that one ``print(..., file=errors)``
    makes one log record.
    """

    def __init__(self) -> None:
        self._pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            error_log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            error_log.error("%s", pending)


# The combined log format plus the duration in seconds, in gunicorn's atoms (see AccessLog).
DEFAULT_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(L)s'

# environ key where a response-header atom ({name}o) finds the app's headers (worker.py puts
# them there, only when the format asks for one)
RESPONSE_HEADERS_KEY = "aiowsgi.response_headers"


class AccessLog:
    """The core's ``access_log=`` callable: one line per request, by default in the combined
    log format followed by the duration in seconds::

        127.0.0.1 - - [21/Nov/2026:13:02:07 +0000] "GET /a?b=1 HTTP/1.1" 200 13 "-" "curl/7.88.1" 0.000152

    ``fmt`` is a format with gunicorn's atoms (:func:`compile_access_format`).  ``target`` is a
    file name (opened for appending) or ``"-"`` for stdout.  Each server has its own handler,
    so two servers in one process keep their files apart; records also pass through the
    ``aiowsgi.access`` logger when the application enabled it at INFO.
    """

    def __init__(self, target: str, fmt: str = DEFAULT_ACCESS_FORMAT) -> None:
        self.target = target
        self.format_line = compile_access_format(fmt)
        self.handler: logging.Handler
        if target == "-":
            self.handler = _SysStreamHandler("stdout")
        else:
            self.handler = _AppendFileHandler(target)
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def __call__(self, environ: Mapping[str, Any], status: int, nbytes: int,
                 duration: float) -> None:
        record = access_logger.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0,
                                          self.format_line(environ, status, nbytes, duration),
                                          (), None)
        self.handler.handle(record)
        if access_logger.isEnabledFor(logging.INFO):
            access_logger.handle(record)

    def reopen(self) -> None:
        """Open the file again by name (after log rotation); nothing for stdout."""
        if isinstance(self.handler, _AppendFileHandler):
            self.handler.reopen()

    def close(self) -> None:
        self.handler.close()


# What an atom's getter is given: environ, status, body bytes, duration in seconds.
Atom = Callable[[Mapping[str, Any], int, int, float], Any]
LineFormatter = Callable[[Mapping[str, Any], int, int, float], str]


def _request_line(environ: Mapping[str, Any]) -> str:
    uri = environ.get("RAW_URI")
    if uri is None:
        query = environ.get("QUERY_STRING")
        uri = environ.get("PATH_INFO", "") + ("?" + query if query else "")
    return "%s %s %s" % (environ.get("REQUEST_METHOD", "-"), uri,
                         environ.get("SERVER_PROTOCOL", "-"))


def _user(environ: Mapping[str, Any]) -> str:
    """REMOTE_USER, else the user name of HTTP basic authentication, else ``-``."""
    user = environ.get("REMOTE_USER")
    if user:
        return str(user)
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            return base64.b64decode(auth[6:].strip(), validate=True).decode(
                "latin-1").partition(":")[0] or "-"
        except (ValueError, binascii.Error):
            pass
    return "-"


def _env(key: str, default: str = "-") -> Atom:
    return lambda environ, status, nbytes, duration: environ.get(key) or default


# gunicorn's atoms (its documentation, "access_log_format"); values from the request are
# escaped by the formatter, numbers are left as they are
ATOMS: Dict[str, Atom] = {
    "h": _env("REMOTE_ADDR"),
    "l": lambda environ, status, nbytes, duration: "-",
    "u": lambda environ, status, nbytes, duration: _user(environ),
    "t": lambda environ, status, nbytes, duration: time.strftime("[%d/%b/%Y:%H:%M:%S %z]"),
    "r": lambda environ, status, nbytes, duration: _request_line(environ),
    "m": _env("REQUEST_METHOD"),
    "U": _env("PATH_INFO"),
    "q": _env("QUERY_STRING", ""),
    "H": _env("SERVER_PROTOCOL"),
    "s": lambda environ, status, nbytes, duration: status,
    "B": lambda environ, status, nbytes, duration: nbytes,
    "b": lambda environ, status, nbytes, duration: nbytes if nbytes else "-",
    "f": _env("HTTP_REFERER"),
    "a": _env("HTTP_USER_AGENT"),
    "T": lambda environ, status, nbytes, duration: int(duration),
    "M": lambda environ, status, nbytes, duration: int(duration * 1e3),
    "D": lambda environ, status, nbytes, duration: int(duration * 1e6),
    "L": lambda environ, status, nbytes, duration: "%.6f" % duration,
    "p": lambda environ, status, nbytes, duration: "<%d>" % os.getpid(),
}
NUMERIC_ATOMS = frozenset("sBTMD")
_ATOM_REFERENCE = re.compile(r"%(?:%|\(([^)]*)\))")


def _header_atom(name: str, kind: str) -> Atom:
    """``{name}i`` (a request header), ``{name}o`` (a response header of the app) or
    ``{name}e`` (an environ key); names are not case-sensitive, as in gunicorn."""
    if kind == "i":
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        return _env(key)
    if kind == "e":
        return lambda environ, status, nbytes, duration: environ.get(
            name, environ.get(name.upper(), "-"))
    wanted = name.lower()

    def response_header(environ: Mapping[str, Any], status: int, nbytes: int,
                        duration: float) -> Any:
        for header, value in environ.get(RESPONSE_HEADERS_KEY) or ():
            if header.lower() == wanted:
                return value
        return "-"

    return response_header


def access_format_atoms(fmt: str) -> List[str]:
    """The atoms ``fmt`` uses (``h``, ``{x-request-id}i``...), in order, once each."""
    names = [name for name in _ATOM_REFERENCE.findall(fmt) if name]
    return list(dict.fromkeys(names))


def compile_access_format(fmt: str) -> LineFormatter:
    """A function of (environ, status, nbytes, duration) giving the line for ``fmt``, a format
    of gunicorn's access-log atoms: ``%(h)s`` (any %-conversion of Python), ``%({header}i)s``,
    ``%({header}o)s``, ``%({key}e)s``.  Raises ValueError for an unknown atom or a format that
    Python's ``%`` refuses.  Values from the request are escaped (:func:`_quote`), so that one
    request is always one line."""
    if not isinstance(fmt, str):
        raise ValueError("expected a string")
    getters = []
    for name in access_format_atoms(fmt):
        match = re.fullmatch(r"\{([^}]+)\}([ioe])", name)
        if match:
            getter = _header_atom(match.group(1), match.group(2))
        elif name in ATOMS:
            getter = ATOMS[name]
        else:
            raise ValueError("unknown atom %%(%s)s" % name)
        getters.append((name, getter, name in NUMERIC_ATOMS))
    try:
        fmt % {name: 0 if numeric else "-" for name, _, numeric in getters}
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(str(exc)) from exc

    def format_line(environ: Mapping[str, Any], status: int, nbytes: int,
                    duration: float) -> str:
        values = {}
        for name, getter, numeric in getters:
            value = getter(environ, status, nbytes, duration)
            values[name] = value if numeric else _quote(value)
        return fmt % values

    return format_line


_default_format = compile_access_format(DEFAULT_ACCESS_FORMAT)


def format_access(environ: Mapping[str, Any], status: int, nbytes: int,
                  duration: float) -> str:
    """The access-log line for one request in the default format (see :class:`AccessLog`)."""
    return _default_format(environ, status, nbytes, duration)


def _quote(value: Any) -> str:
    """Escape what could forge a log line or a field: control characters, quotes, backslashes."""
    text = str(value)
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')
