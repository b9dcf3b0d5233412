"""The command line: ``aiowsgi [OPTIONS] APP``.

A thin layer: argparse options are generated from :class:`aiowsgi.config.Config` (its fields
carry the flags, help and defaults) and passed as keyword arguments to :func:`aiowsgi.serve`,
the same code path as the Python API.  This module only parses and reports errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Dict, List, Optional

from . import __version__
from .config import ConfigError, default_of, options
from .importer import AppImportError
from .master import WorkerBootError
from .server import BindError, serve

DESCRIPTION = """\
Serve the WSGI application APP: 'package.module:attribute' (the attribute may be a dotted
path) or 'package.module' (then its 'application', else its 'app').  The current directory
is importable.  A master process binds the addresses and runs --workers worker processes.
Signals to the master: TERM/INT stop gracefully, QUIT stops at once, HUP restarts the workers
one by one with freshly imported code."""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; every option, its help and default come from Config."""
    parser = argparse.ArgumentParser(
        prog="aiowsgi", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", metavar="APP", help="the WSGI application to serve")
    for field in options():
        if field.metadata["flags"]:  # the others are Python API only
            parser.add_argument(*field.metadata["flags"], **_argument(field))
    parser.add_argument("--version", action="version", version="aiowsgi " + __version__)
    return parser


def _argument(field: "dataclasses.Field[Any]") -> Dict[str, Any]:
    """argparse keywords for one Config field.  Options the user did not give are left out
    (SUPPRESS), so Config alone supplies defaults."""
    default = default_of(field)
    meta = field.metadata
    kwargs: Dict[str, Any] = {"dest": field.name, "default": argparse.SUPPRESS}
    if isinstance(default, bool):
        kwargs.update(action="store_true", help=meta["help"])
        return kwargs
    if meta["repeatable"]:
        kwargs["action"] = "append"
    elif isinstance(default, (int, float)):
        kwargs["type"] = type(default)
    shown = meta["cli_default"]
    if shown is None:
        shown = ",".join(default) if isinstance(default, tuple) else "%g" % default \
            if isinstance(default, float) else str(default)
    kwargs.update(metavar=meta["metavar"], help="%s [default: %s]" % (meta["help"], shown))
    return kwargs


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (1 when the app or an address fails)."""
    parser = build_parser()
    arguments = vars(parser.parse_args(argv))
    app = arguments.pop("app")
    try:
        serve(app, **arguments)
    except ConfigError as exc:
        parser.error(str(exc))
    except (AppImportError, BindError, WorkerBootError) as exc:
        print("aiowsgi: %s" % exc, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # before the master's handlers were installed
        return 130
    return 0


__all__ = ["build_parser", "main"]
