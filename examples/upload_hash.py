"""Hash an upload of any size in constant memory: answers its sha256 and its byte count.

Run it, then upload something, as big and as slowly as you like::

    python examples/upload_hash.py                  # serves on 127.0.0.1:8000
    python examples/upload_hash.py 8080             # another port (0: any free one)
    python examples/upload_hash.py 127.0.0.1:9000   # any bind address aiowsgi understands
    aiowsgi --chdir examples upload_hash:app        # the command line (add --max-body-size)

    curl -T big.iso http://127.0.0.1:8000/                                  # Content-Length
    curl -H 'Transfer-Encoding: chunked' -T big.iso http://127.0.0.1:8000/  # chunked

The answer is JSON: ``{"sha256": "...", "bytes": ...}``.  aiowsgi calls the app as soon as
the request head is in.  Iterating ``wsgi.input`` gives the body as it arrives, and the
server's sentinel object when nothing has arrived yet: the app then yields that sentinel
from its own response iterable and aiowsgi calls it again once more body is there.
Meanwhile the same single-threaded worker serves everybody else.  Run as a script, the
body size limit is lifted (aiowsgi's default ``max_body_size`` is 1 GiB).  Under a server
without streaming input the app reads its fully buffered ``wsgi.input`` the classic way.
"""

import hashlib
import json
import os
import sys

if __name__ == "__main__":  # run from a checkout (built in place): aiowsgi is one folder up
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiowsgi  # noqa: E402

BLOCK = 64 * 1024


def _answer(start_response, digest, count):
    body = json.dumps({"sha256": digest.hexdigest(), "bytes": count}).encode() + b"\n"
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return body


def _streamed(environ, start_response, sentinel):
    digest = hashlib.sha256()
    count = 0
    for chunk in environ["wsgi.input"]:
        if chunk is sentinel:
            yield sentinel  # nothing buffered: suspend until more of the body arrives
            continue
        digest.update(chunk)
        count += len(chunk)
    yield _answer(start_response, digest, count)


def _buffered(environ, start_response):
    # PEP 3333: read no more than CONTENT_LENGTH, unless the server says the input ends by
    # itself (wsgi.input_terminated); a chunked body without it cannot be read safely
    digest = hashlib.sha256()
    count = 0
    stream = environ["wsgi.input"]
    left = None if environ.get("wsgi.input_terminated") else int(
        environ.get("CONTENT_LENGTH") or 0)
    while left is None or left > 0:
        block = stream.read(BLOCK if left is None else min(BLOCK, left))
        if not block:
            break
        digest.update(block)
        count += len(block)
        if left is not None:
            left -= len(block)
    yield _answer(start_response, digest, count)


@aiowsgi.streaming_input
def app(environ, start_response):
    if environ["REQUEST_METHOD"] not in ("POST", "PUT"):
        body = b"PUT or POST a body to get its sha256, e.g. curl -T FILE http://HOST:PORT/\n"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    sentinel = environ.get("aiowsgi.input_sentinel")
    if sentinel is None:
        return _buffered(environ, start_response)
    return _streamed(environ, start_response, sentinel)


if __name__ == "__main__":
    bind = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    if bind.isdigit():
        bind = "127.0.0.1:" + bind
    # max_body_size is 1 GiB by default; this app is meant for uploads of any size
    aiowsgi.serve(app, bind=bind, max_body_size=1 << 50)
