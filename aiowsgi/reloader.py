"""--reload: which source files changed, told by the kernel (inotify), never by polling.

A :class:`Watcher` watches the directories of the files it is given (an editor that saves by
writing a new file and renaming it over the old one replaces the file, and a watch on the file
itself would be lost with it) and reports the watched files that were written or moved into
place.  :func:`syntax_errors` compiles changed Python sources, so that the master keeps the
running workers when the new code cannot even be parsed.  inotify is reached through ctypes on
the C library (Linux only, as the rest of aiowsgi).  Must not decide what a change means: the
master does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from typing import Dict, Iterable, List, Set

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
WATCH_MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_ONLYDIR
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
_libc.inotify_init1.restype = _libc.inotify_add_watch.restype = ctypes.c_int


class Watcher:
    """The files given to :meth:`watch`; :meth:`fileno` becomes readable when one may have
    changed, and :meth:`changed` says which did."""

    def __init__(self) -> None:
        self.fd: int = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise _os_error("inotify_init1")
        self.dirs: Dict[int, str] = {}          # watch descriptor -> directory
        self.names: Dict[str, Set[str]] = {}    # directory -> names of watched files in it

    def fileno(self) -> int:
        return int(self.fd)

    def watch(self, paths: Iterable[str]) -> None:
        """Watch these files too (each by its directory).  A directory that cannot be watched
        (gone, not readable) is skipped: a module loaded from a zip file has none."""
        for path in paths:
            directory, name = os.path.split(os.path.abspath(path))
            names = self.names.get(directory)
            if names is None:
                wd = _libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH_MASK)
                if wd < 0:
                    continue
                self.dirs[wd] = directory
                names = self.names[directory] = set()
            names.add(name)

    def watching(self, path: str) -> bool:
        directory, name = os.path.split(os.path.abspath(path))
        return name in self.names.get(directory, ())

    def changed(self) -> List[str]:
        """The watched files written or moved into place since the last call (reads every
        pending event; empty when there are none)."""
        found: List[str] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return found
            offset = 0
            while offset + EVENT.size <= len(data):
                wd, mask, _, length = EVENT.unpack_from(data, offset)
                raw = data[offset + EVENT.size:offset + EVENT.size + length]
                offset += EVENT.size + length
                name = os.fsdecode(raw.rstrip(b"\0"))
                directory = self.dirs.get(wd)
                if mask & IN_IGNORED and directory is not None:  # the directory is gone
                    del self.dirs[wd]
                    self.names.pop(directory, None)
                elif directory is not None and name in self.names.get(directory, ()):
                    path = os.path.join(directory, name)
                    if path not in found:
                        found.append(path)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def syntax_errors(paths: Iterable[str]) -> List[str]:
    """One line for each Python source among ``paths`` that does not compile, such as
    ``app.py, line 3: invalid syntax``."""
    errors = []
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec", dont_inherit=True)
        except SyntaxError as exc:
            errors.append("%s, line %s: %s" % (path, exc.lineno, exc.msg))
        except (OSError, ValueError) as exc:  # gone again, or NUL bytes
            errors.append("%s: %s" % (path, exc))
    return errors


def _os_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, "%s: %s" % (what, os.strerror(code)))


__all__ = ["Watcher", "syntax_errors"]
