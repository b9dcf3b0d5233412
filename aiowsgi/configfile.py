"""Where option values come from besides the command line: a config file and the environment.

A config file is Python: its top-level names are options (``workers = 4``, ``bind =
["127.0.0.1:8000"]``) and hooks (``def post_fork(server, worker): ...``), named as
:class:`~aiowsgi.config.Config`'s fields; any other name is an error that suggests the closest
valid one.  The environment gives ``AIOWSGI_<OPTION>`` (``AIOWSGI_WORKERS=4``), converted from
text as the command line converts its arguments.  :func:`merge` lays them over one another
(command line, then environment, then file, then defaults) and remembers where each value came
from, for ``--print-config``.  Must not validate values (Config does) nor start anything.
"""

from __future__ import annotations

import difflib
import os
import types
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple

from .config import Config, ConfigError, default_of, options
from .hooks import HOOKS

ENV_PREFIX = "AIOWSGI_"
APP_NAME = "wsgi_app"  # the APP argument, in a config file or as AIOWSGI_WSGI_APP
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # the config file, when -c is not given
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")

# gunicorn's names for what aiowsgi spells otherwise, for the suggestion an unknown name gets;
# a gunicorn setting aiowsgi does not have gets no suggestion (README.rst, "Coming from gunicorn")
GUNICORN_NAMES = {
    "accesslog": "access_log",
    "loglevel": "log_level",
    "preload_app": "preload",
    "reload_extra_files": "reload_extra_file",
    "limit_request_line": "max_header_size",
    "limit_request_field_size": "max_header_size",
}

Values = Dict[str, Any]
Sources = Dict[str, str]


def settable() -> List[str]:
    """The names a config file may set: every option of Config with a command-line flag,
    every hook, and ``wsgi_app``."""
    names = [o.name for o in options() if o.metadata["flags"] or o.name in HOOKS]
    return names + [APP_NAME]


def from_environment(environ: Mapping[str, str]) -> Values:
    """The options set by ``AIOWSGI_<OPTION>`` variables (flags: 1/0, true/false, yes/no,
    on/off; repeatable options and lists: comma-separated).  Other ``AIOWSGI_`` variables are
    left alone (the test suite and the build have some of their own)."""
    fields = {o.name: o for o in options() if o.metadata["flags"]}
    values: Values = {}
    for key, text in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name == APP_NAME:
            values[name] = text
        elif name in fields:
            values[name] = _convert(key, text, default_of(fields[name]),
                                    fields[name].metadata["repeatable"])
    return values


def _convert(key: str, text: str, default: Any, repeatable: bool) -> Any:
    if isinstance(default, bool):
        if text.strip().lower() not in TRUE + FALSE:
            raise ConfigError("invalid %s=%r: expected 1 or 0 (true/false, yes/no, on/off)"
                              % (key, text))
        return text.strip().lower() in TRUE
    if repeatable:
        return [item.strip() for item in text.split(",") if item.strip()]
    for kind, what in ((int, "a whole number"), (float, "a number of seconds")):
        if isinstance(default, kind):
            try:
                return kind(text)
            except ValueError:
                raise ConfigError("invalid %s=%r: expected %s" % (key, text, what)) from None
    return text


def read_file(path: str) -> Values:
    """Run the config file ``path`` and return the options and hooks it sets.  Modules,
    classes, functions imported from elsewhere, and names starting with ``_`` are not options;
    any other name must be one (ConfigError, naming the closest valid name)."""
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror or exc)) \
            from exc
    namespace: Dict[str, Any] = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        exec(compile(source, path, "exec"), namespace)  # the user's own configuration code
    except Exception as exc:
        raise ConfigError("error in config file %s: %s: %s" % (path, type(exc).__name__, exc)) \
            from exc
    known = set(settable())
    values: Values = {}
    for name, value in namespace.items():
        if name.startswith("_") or _not_a_setting(value):
            continue
        if name not in known:
            raise ConfigError("unknown option %r in config file %s%s"
                              % (name, path, _suggestion(name, known)))
        values[name] = value
    return values


def _not_a_setting(value: Any) -> bool:
    """A module, a class, or a function that the file imported rather than defined."""
    if isinstance(value, (types.ModuleType, type)):
        return True
    if callable(value):
        return getattr(value, "__module__", None) != "__config__"
    return False


def _suggestion(name: str, known: Collection[str]) -> str:
    guess = GUNICORN_NAMES.get(name)
    if guess is None:
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        guess = close[0] if close else None
    return "; did you mean %r?" % guess if guess else ""


def merge(command_line: Values, environ: Mapping[str, str],
          path: Optional[str]) -> Tuple[Values, Sources]:
    """The values and their sources, command line over environment over file: ({name:
    value}, {name: "command line" | "environment AIOWSGI_X" | "config file PATH"}).  Options
    set nowhere are left out (Config has their defaults)."""
    values: Values = {}
    sources: Sources = {}
    layers = [(read_file(path) if path else {}, "config file %s" % path),
              (from_environment(environ), None),
              (command_line, "command line")]
    for layer, source in layers:
        for name, value in layer.items():
            values[name] = value
            sources[name] = source or "environment %s%s" % (ENV_PREFIX, name.upper())
    return values, sources


def describe(config: Config, app: Optional[str], sources: Sources) -> str:
    """``--print-config``: every option's effective value, as a config file would set it,
    with where it came from."""
    rows = [(APP_NAME, repr(app), sources.get(APP_NAME, "not set"))]
    for name in settable():
        if name == APP_NAME:
            continue
        value = getattr(config, name)
        shown = _describe_hook(value) if name in HOOKS and value is not None else repr(value)
        rows.append((name, shown, sources.get(name, "default")))
    width = min(48, max(len(name) + len(shown) for name, shown, _ in rows) + 3)
    return "".join("%s  # %s\n" % (("%s = %s" % (name, shown)).ljust(width), source)
                   for name, shown, source in rows)


def _describe_hook(hook: Any) -> str:
    code = getattr(hook, "__code__", None)
    where = " at %s:%d" % (code.co_filename, code.co_firstlineno) if code else ""
    return "<hook %s%s>" % (getattr(hook, "__qualname__", repr(hook)), where)


def located_in(message: str, sources: Sources) -> str:
    """``message`` (a ConfigError's, which names ``--option``) followed by where the value came
    from, when not from the command line."""
    for name, source in sources.items():
        if source != "command line" and ("--%s " % name.replace("_", "-") in message or
                                         "invalid %s hook" % name in message):
            return "%s (from the %s)" % (message, source)
    return message


__all__ = ["read_file", "from_environment", "merge", "describe", "located_in", "settable",
           "APP_NAME", "CONFIG_ENV"]
