"""bottle integration: serve a bottle app with aiowsgi through ``bottle.run``.

Either name the adapter by its import path (no import needed)::

    bottle.run(app, server="aiowsgi.bottle:AioWSGIServer", host="127.0.0.1", port=8080)

or import this module once, which registers the short name ``"aiowsgi"``::

    import aiowsgi.bottle
    bottle.run(app, server="aiowsgi", port=8080, workers=4, keepalive=10)

Every extra keyword of ``bottle.run`` is handed to :func:`aiowsgi.serve` unchanged
(``workers``, ``keepalive``, ``max_body_size``, ...).  This module imports bottle; the rest of
aiowsgi never does, so ``import aiowsgi`` works without bottle installed.
"""

from typing import Any, Callable

import bottle  # type: ignore[import-untyped]  # bottle ships no type hints

import aiowsgi

__all__ = ["AioWSGIServer"]


def bind_address(host: str, port: int) -> str:
    """Turn bottle's ``host``/``port`` pair into an aiowsgi bind address.

    ``unix:PATH`` is bottle's own spelling for a unix socket and is kept as it is; a host with a
    colon is an IPv6 literal and gets brackets; an empty host means every IPv4 interface.
    """
    if host.startswith("unix:"):
        return host
    if host.startswith("[") and host.endswith("]"):
        return "%s:%d" % (host, port)
    if ":" in host:
        return "[%s]:%d" % (host, port)
    return "%s:%d" % (host or "0.0.0.0", port)


class AioWSGIServer(bottle.ServerAdapter):  # type: ignore[misc]  # bottle ships no types
    """A ``bottle.ServerAdapter`` that runs the app with :func:`aiowsgi.serve`.

    ``bottle.run(..., quiet=False)`` prints bottle's usual banner before aiowsgi starts;
    ``quiet=True`` also lowers aiowsgi's log level to ``warning`` unless ``log_level`` is given.
    An explicit ``bind=`` option (one address or a list, as :func:`aiowsgi.serve` takes it)
    overrides ``host`` and ``port``.
    """

    def run(self, handler: Callable[..., Any]) -> None:
        options = dict(self.options)
        bind = options.pop("bind", None) or bind_address(self.host, self.port)
        if self.quiet:  # bottle.run(quiet=True): aiowsgi's own start-up lines go too
            options.setdefault("log_level", "warning")
        aiowsgi.serve(handler, bind=bind, **options)


# bottle looks names up in this dict before trying an import path ("module:attr").
bottle.server_names["aiowsgi"] = AioWSGIServer
