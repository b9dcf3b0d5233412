"""Server hooks: the functions a config file (or the Python API) gives to be called at points of
the server's life, where gunicorn calls its hooks of the same names.

Owns the table of hooks (:data:`HOOKS`: name and parameters), checking a hook before the server
starts (:func:`check`), calling one so that its exception is logged and the server goes on
(:func:`call`).  Must not decide when a hook is called: master.py, worker.py and server.py
do (worker.py puts the per-request hooks around the app only when they are set, so that
without them a request costs no Python call more).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional, Tuple

from .log import error_log

# name -> the parameters it is called with (SPEC section 9; README.rst, "Hooks")
HOOKS: Dict[str, Tuple[str, ...]] = {
    "on_starting": ("server",),
    "when_ready": ("server",),
    "on_reload": ("server",),
    "post_fork": ("server", "worker"),
    "post_worker_init": ("worker",),
    "worker_exit": ("server", "worker"),
    "on_exit": ("server",),
    "pre_request": ("worker", "environ"),
    "post_request": ("worker", "environ", "status"),
}

Hook = Callable[..., Any]


class HookFailed(RuntimeError):
    """``on_starting`` raised: the server does not start (exit status 1)."""


def check(name: str, hook: Any) -> Optional[str]:
    """Why ``hook`` cannot be the hook ``name`` (not callable, or not callable with its
    parameters), or None when it can."""
    params = HOOKS[name]
    if not callable(hook):
        return "expected a function of (%s), not a %s" % (", ".join(params),
                                                          type(hook).__name__)
    try:
        inspect.signature(hook).bind(*params)
    except TypeError:
        return "expected a function of (%s)" % ", ".join(params)
    except ValueError:
        pass  # no signature to read (a builtin): it will tell when called
    return None


def call(hook: Optional[Hook], name: str, *args: Any) -> None:
    """Call ``hook(*args)`` if set; an exception is logged with its traceback, and the caller
    goes on (:func:`call_or_fail` for on_starting)."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception:
        error_log.exception("Exception in the %s hook", name)


def call_or_fail(hook: Optional[Hook], name: str, *args: Any) -> None:
    """Call ``hook(*args)`` if set; an exception is logged and raised as :class:`HookFailed`."""
    if hook is None:
        return
    try:
        hook(*args)
    except Exception as exc:
        error_log.exception("Exception in the %s hook", name)
        raise HookFailed("the %s hook raised %s: %s" % (name, type(exc).__name__, exc)) from exc


__all__ = ["HOOKS", "HookFailed", "check", "call", "call_or_fail"]
