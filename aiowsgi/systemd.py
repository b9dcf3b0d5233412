"""Telling a service manager how the server is doing: systemd's notifications (sd_notify(3))
and the ``--pid`` file.

Owns :class:`Notifier`, which writes the notification protocol itself with the socket module
(one datagram per message to the socket named by ``$NOTIFY_SOCKET``: a path, or an abstract
socket when it begins with ``@``): ``READY=1``, ``RELOADING=1`` (with ``MONOTONIC_USEC``),
``STOPPING=1``, ``STATUS=...``, and ``WATCHDOG=1`` every half ``WatchdogSec`` when systemd asks
for it (``$WATCHDOG_USEC``, for this process if ``$WATCHDOG_PID`` says so); and
:class:`PidFile`.  Must not make the server fail: a message that cannot be sent is logged and
dropped, as sd_notify does.  Who sends what, and when, is the master's business (master.py),
or server.py's without a master.
"""

from __future__ import annotations

import os
import socket
import time
from typing import MutableMapping, Optional

from .log import error_log

ENVIRONMENT = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


class Notifier:
    """The notification socket of this service, or none (every method then does nothing).

    ``address`` is ``$NOTIFY_SOCKET``'s value; ``watchdog`` the seconds between two
    ``WATCHDOG=1`` (half of systemd's ``WatchdogSec``), or None.
    """

    def __init__(self, address: Optional[str], watchdog: Optional[float] = None) -> None:
        self.address = address
        self.watchdog = watchdog if address else None
        self._watchdog_due = time.monotonic()

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] = os.environ) -> "Notifier":
        """The notifier systemd set up for this process.  The variables are taken out of the
        environment, so that the workers, the app and its children do not speak for the
        service too."""
        address = environ.get("NOTIFY_SOCKET") or None
        usec, pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
        for name in ENVIRONMENT:
            environ.pop(name, None)
        watchdog = None
        if usec.isdigit() and int(usec) > 0 and pid in ("", str(os.getpid())):
            watchdog = int(usec) / 2e6
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send one message of ``NAME=value`` lines; True if it went."""
        if self.address is None:
            return False
        target = self.address
        if target.startswith("@"):  # an abstract socket: a NUL byte, then the name
            target = "\0" + target[1:]
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(fields).encode("utf-8"), target)
        except OSError as exc:
            error_log.debug("Cannot notify systemd at %s: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", "STATUS=" + status)

    def reloading(self) -> None:
        # systemd 253+ (Type=notify-reload) matches the reload by the time it began
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", "MONOTONIC_USEC=%d" % usec, "STATUS=Reloading the workers")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", "STATUS=" + status)

    def watchdog_timeout(self) -> Optional[float]:
        """Seconds until the next ``WATCHDOG=1`` is due (None: no watchdog)."""
        if self.watchdog is None:
            return None
        return max(0.0, self._watchdog_due - time.monotonic())

    def keep_alive(self) -> None:
        """Send ``WATCHDOG=1`` if it is due (call it from the loop that must stay alive)."""
        if self.watchdog is None or time.monotonic() < self._watchdog_due:
            return
        self._watchdog_due = time.monotonic() + self.watchdog
        self.send("WATCHDOG=1")


class PidFileError(OSError):
    """The ``--pid`` file cannot be written; ``str()`` is ``cannot write --pid FILE: why``."""

    def __str__(self) -> str:
        return "cannot write --pid %s: %s" % (self.filename, self.strerror)


class PidFile:
    """``--pid FILE``: this process's id, written when serving begins and removed on exit
    (unless another process has written its own there meanwhile)."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)  # the same file after a --chdir of the app's
        self.pid = 0

    def write(self) -> None:
        """Raises :class:`PidFileError`."""
        pid = os.getpid()
        tmp = "%s.%d.tmp" % (self.path, pid)
        try:
            with open(tmp, "w") as f:
                f.write("%d\n" % pid)
            os.replace(tmp, self.path)  # never seen half written
        except OSError as exc:
            raise PidFileError(exc.errno, exc.strerror, self.path) from exc
        self.pid = pid

    def remove(self) -> None:
        if not self.pid:
            return
        try:
            with open(self.path) as f:
                if f.read().strip() != str(self.pid):
                    return
            os.unlink(self.path)
        except (OSError, ValueError):
            pass
