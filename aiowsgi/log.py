"""Logging: the ``aiowsgi.error`` and ``aiowsgi.access`` loggers and the callables the core gets.

The core reports through three objects made here: :func:`core_log` (``log=``), an
:class:`ErrorStream` (``errors=``, the ``wsgi.errors`` of every request) and an
:class:`AccessLog` (``access_log=``).  This module formats and writes lines; it knows nothing
about sockets or processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import IO, Any, Iterable, Mapping, Optional

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


class AccessLog:
    """The core's ``access_log=`` callable: one line per request, in the combined log format
    followed by the duration in seconds::

        127.0.0.1 - - [21/Nov/2026:13:02:07 +0000] "GET /a?b=1 HTTP/1.1" 200 13 "-" "curl/7.88.1" 0.000152

    ``target`` is a file name (opened for appending) or ``"-"`` for stdout.  Each server has its
    own handler, so two servers in one process keep their files apart; records also pass
    through the ``aiowsgi.access`` logger when the application enabled it at INFO.
    """

    def __init__(self, target: str) -> None:
        self.target = target
        self.handler: logging.Handler
        if target == "-":
            self.handler = _SysStreamHandler("stdout")
        else:
            self.handler = _AppendFileHandler(target)
        self.handler.setFormatter(logging.Formatter("%(message)s"))

    def __call__(self, environ: Mapping[str, Any], status: int, nbytes: int,
                 duration: float) -> None:
        record = access_logger.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0,
                                          format_access(environ, status, nbytes, duration),
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


def format_access(environ: Mapping[str, Any], status: int, nbytes: int,
                  duration: float) -> str:
    """The access-log line for one request (see :class:`AccessLog`)."""
    uri = environ.get("RAW_URI")
    if uri is None:
        query = environ.get("QUERY_STRING")
        uri = environ.get("PATH_INFO", "") + ("?" + query if query else "")
    request = "%s %s %s" % (environ.get("REQUEST_METHOD", "-"), uri,
                            environ.get("SERVER_PROTOCOL", "-"))
    return '%s - %s [%s] "%s" %d %s "%s" "%s" %.6f' % (
        environ.get("REMOTE_ADDR") or "-",
        _quote(environ.get("REMOTE_USER") or "-"),
        time.strftime("%d/%b/%Y:%H:%M:%S %z"),
        _quote(request),
        status,
        nbytes if nbytes else "-",
        _quote(environ.get("HTTP_REFERER", "-")),
        _quote(environ.get("HTTP_USER_AGENT", "-")),
        duration,
    )


def _quote(text: str) -> str:
    """Escape what could forge a log line or a field: control characters, quotes, backslashes."""
    return str(text).encode("unicode_escape").decode("ascii").replace('"', '\\"')
