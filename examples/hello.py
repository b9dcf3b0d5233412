"""The smallest WSGI app, with no framework.

Run it, then open http://127.0.0.1:8000/ ::

    python examples/hello.py                  # on 127.0.0.1:8000 (what ``make serve`` runs)
    python examples/hello.py 127.0.0.1:9000   # any bind address aiowsgi understands
    aiowsgi --chdir examples hello:app        # the same app through the command line
"""

import os
import sys


def app(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    # Run from a checkout (built in place, not installed): aiowsgi is in the folder above.
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    aiowsgi.serve(app, bind=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
