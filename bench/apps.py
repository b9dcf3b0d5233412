"""The one minimal WSGI app every server in the benchmark runs; the workload is picked by path.
(The database workloads are in app_db.py and app_flask_db.py.)

Kept deliberately plain (no framework, no allocation beyond a header list per call) so that what is
measured is the server.  The 13 MB file lives at $BENCH_FILE, written by the runner before any server
starts.
"""

import os
import time

HELLO = b"Hello, world!"  # 13 bytes
BODY_13K = b"x" * (13 * 1024)
BODY_1M = b"x" * (1024 * 1024)
FILE_PATH = os.environ.get("BENCH_FILE", "")
BLOCK = 64 * 1024


def _fixed(body):
    length = str(len(body))

    def respond(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", length)])
        return [body]

    return respond


class _FileIter:
    """Fallback when a server has no wsgi.file_wrapper: read blocks, close the file once."""

    def __init__(self, f):
        self.f = f

    def __iter__(self):
        return iter(lambda: self.f.read(BLOCK), b"")

    def close(self):
        self.f.close()


def _longio(hello):
    def respond(environ, start_response):
        time.sleep(0.01)  # 10 ms of waiting: a stand-in for a query or a call to another service
        return hello(environ, start_response)

    return respond


def send_file(environ, start_response):
    f = open(FILE_PATH, "rb")
    size = os.fstat(f.fileno()).st_size
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(size))])
    wrapper = environ.get("wsgi.file_wrapper")
    return wrapper(f, BLOCK) if wrapper is not None else _FileIter(f)


def upload(environ, start_response):
    """Read the whole body (chunked uploads carry no CONTENT_LENGTH) and answer with its size."""
    stream = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH") or ""
    total = 0
    if length.isdigit():
        left = int(length)
        while left > 0:
            chunk = stream.read(min(BLOCK, left))
            if not chunk:
                break
            total += len(chunk)
            left -= len(chunk)
    else:
        # PEP 3333 with wsgi.input_terminated: read until b"" marks the end of the body.
        while True:
            chunk = stream.read(BLOCK)
            if not chunk:
                break
            total += len(chunk)
    body = b"%d" % total
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def not_found(environ, start_response):
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]


ROUTES = {
    "/hello": _fixed(HELLO),
    "/13k": _fixed(BODY_13K),
    "/1m": _fixed(BODY_1M),
    "/file": send_file,
    "/upload": upload,
}
ROUTES["/longio"] = _longio(ROUTES["/hello"])


def app(environ, start_response):
    return ROUTES.get(environ.get("PATH_INFO", ""), not_found)(environ, start_response)


application = app
