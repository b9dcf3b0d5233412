"""aiowsgi: a fast WSGI server with a C epoll core, llhttp parsing and streaming request bodies."""

__version__ = "0.1.0"

from ._core import STREAMING_ATTR, ClientDisconnected, RequestTooLarge
from .server import Server, serve


def streaming_input(app):
    """Mark ``app`` as using the streaming input protocol (SPEC section 5); returns ``app``."""
    setattr(app, STREAMING_ATTR, True)
    return app


__all__ = ["__version__", "Server", "serve", "streaming_input", "ClientDisconnected",
           "RequestTooLarge"]
