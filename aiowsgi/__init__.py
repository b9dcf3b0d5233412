"""aiowsgi: a fast WSGI server with a C epoll core, llhttp parsing and streaming request bodies."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

__version__ = "0.1.0"

from ._core import STREAMING_ATTR, ClientDisconnected, RequestTooLarge
from .config import Config, ConfigError
from .importer import AppImportError
from .server import BindError, Server, serve

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    App = TypeVar("App", bound=WSGIApplication)
else:
    App = TypeVar("App")


def streaming_input(app: App) -> App:
    """Mark ``app`` as using the streaming input protocol (SPEC section 5); returns ``app``,
    so it works as a decorator."""
    setattr(app, STREAMING_ATTR, True)
    return app


__all__ = ["__version__", "Server", "serve", "streaming_input", "ClientDisconnected",
           "RequestTooLarge", "Config", "ConfigError", "BindError", "AppImportError"]
