"""The command line: ``aiowsgi [OPTIONS] APP``.

A thin layer: argparse options are generated from :class:`aiowsgi.config.Config` (its fields
carry the flags, help and defaults) and passed as keyword arguments to :func:`aiowsgi.serve`,
the same code path as the Python API.  This module only parses and reports errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Any, Dict, List, Optional

from . import __version__
from .config import Config, ConfigError, default_of, options
from .configfile import APP_NAME, CONFIG_ENV, describe, located_in, merge
from .hooks import HookFailed
from .importer import AppImportError, load_app
from .master import WorkerBootError
from .server import BindError, serve

CLI_ONLY = ("app", "config", "print_config", "check_config")  # not options of serve()

DESCRIPTION = """\
Serve the WSGI application APP: 'package.module:attribute' (the attribute may be a dotted
path) or 'package.module' (then its 'application', else its 'app').  The current directory
is importable.  A master process binds the addresses and runs --workers worker processes.
Signals to the master: TERM/INT stop gracefully, QUIT stops at once, HUP restarts the workers
one by one with freshly imported code."""

EPILOG = """\
Every option can also be set in the config file (-c FILE: 'workers = 4', as the option's name
with '_' for '-') or in the environment ('AIOWSGI_WORKERS=4'); the command line wins over the
environment, which wins over the file."""


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser; every option, its help and default come from Config."""
    parser = argparse.ArgumentParser(
        prog="aiowsgi", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", metavar="APP", nargs="?", default=None,
                        help="the WSGI application to serve (or wsgi_app in the config file)")
    parser.add_argument("-c", "--config", metavar="FILE", default=None,
                        help="Python file whose top-level names set options and hooks (also "
                        "$%s) [default: none]" % CONFIG_ENV)
    parser.add_argument("--print-config", action="store_true",
                        help="print every option's effective value and where it came from, "
                        "and exit")
    parser.add_argument("--check-config", action="store_true",
                        help="check the options and import the app, and exit: status 0 if "
                        "both are fine, else 1")
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
    """Run the command line; returns the exit status (1 when the app, an address or a hook
    fails, or --check-config finds a problem)."""
    parser = build_parser()
    arguments = vars(parser.parse_args(argv))
    command_line = {name: value for name, value in arguments.items() if name not in CLI_ONLY}
    if arguments["app"] is not None:
        command_line[APP_NAME] = arguments["app"]
    checking = arguments["check_config"]
    sources: Dict[str, str] = {}
    try:
        values, sources = merge(command_line, os.environ,
                                arguments["config"] or os.environ.get(CONFIG_ENV))
        app = values.pop(APP_NAME, None)
        if arguments["print_config"]:
            config = Config(**values)
            sys.stdout.write(describe(config, app, sources))
            return 0
        if app is None:
            parser.error("the following arguments are required: APP (or wsgi_app in the "
                         "config file)")
        if checking:
            return check(app, values)
        serve(app, **values)
    except ConfigError as exc:
        message = located_in(str(exc), sources)
        if checking:
            print("aiowsgi: %s" % message, file=sys.stderr, flush=True)
            return 1
        parser.error(message)
    except (AppImportError, BindError, WorkerBootError, HookFailed) as exc:
        print("aiowsgi: %s" % exc, file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:  # before the master's handlers were installed
        return 130
    return 0


def check(app: str, values: Dict[str, Any]) -> int:
    """--check-config: the options are valid (Config) and the app imports; nothing is bound
    and no hook is called.  Returns the exit status."""
    config = Config(**values)
    if config.chdir is not None:
        os.chdir(config.chdir)
    load_app(app, factory=config.factory)
    print("aiowsgi: configuration OK; %r imported" % app, flush=True)
    return 0


__all__ = ["build_parser", "main"]
