"""Turn an ``APP`` string (``package.module:attribute``) into a WSGI application.

The master process only checks the form of the string (:func:`check_app_spec`); the import
itself (:func:`load_app`) happens in each worker after the fork, so that a restarted worker
imports the app's current source.  Every failure is an :class:`AppImportError` whose message
is the one line the command line prints.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any, Tuple, cast

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

DEFAULT_ATTRIBUTES = ("application", "app")


class AppImportError(ImportError):
    """The app could not be imported; ``str()`` is
    ``cannot import 'x.y:app': ModuleNotFoundError: No module named 'x'``."""

    def __init__(self, spec: str, reason: str) -> None:
        super().__init__("cannot import %r: %s" % (spec, reason))
        self.spec = spec
        self.reason = reason


def check_app_spec(spec: str) -> Tuple[str, str]:
    """Split ``spec`` into (module, attribute path or ""), raising AppImportError if malformed."""
    module, sep, attr = spec.partition(":")
    parts = module.split(".") + (attr.split(".") if sep else [])
    if not all(part.isidentifier() for part in parts):
        raise AppImportError(spec, "expected 'package.module:attribute' or 'package.module'")
    return module, attr


def load_app(spec: str, factory: bool = False) -> "WSGIApplication":
    """Import ``spec`` and return the app (calling it first when ``factory``).

    The current directory is put on ``sys.path`` first, as ``python -m`` does, so an app next
    to the user's shell is found however aiowsgi was started.
    """
    module_name, attr = check_app_spec(spec)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the module's own code may raise anything
        raise AppImportError(spec, _describe(exc)) from exc
    if attr:
        obj: Any = module
        try:
            for name in attr.split("."):
                obj = getattr(obj, name)
        except AttributeError as exc:
            raise AppImportError(spec, _describe(exc)) from exc
    else:
        found = [name for name in DEFAULT_ATTRIBUTES if hasattr(module, name)]
        if not found:
            raise AppImportError(spec, "module %r has neither 'application' nor 'app'; name the "
                                       "app as '%s:NAME'" % (module_name, module_name))
        attr = found[0]
        obj = getattr(module, attr)
    try:
        return make_app(obj, factory)
    except TypeError as exc:
        raise AppImportError(spec, "%r: %s" % (attr, exc)) from exc
    except Exception as exc:
        raise AppImportError(spec, "the factory raised " + _describe(exc)) from exc


def make_app(obj: Any, factory: bool) -> "WSGIApplication":
    """``obj`` as an app: called first when ``factory``; TypeError if the result is not
    callable."""
    if factory:
        if not callable(obj):
            raise TypeError("the factory is not callable (it is a %s)" % type(obj).__name__)
        obj = obj()
    if not callable(obj):
        raise TypeError("not a WSGI application (a %s is not callable)" % type(obj).__name__)
    return cast("WSGIApplication", obj)


def _describe(exc: BaseException) -> str:
    """``ModuleNotFoundError: No module named 'x'``: the exception on one line."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
