"""Hash an upload of any size in constant memory: answers its sha256 and its byte count.

Run: ``python examples/upload_hash.py [HOST:PORT | PORT]`` (127.0.0.1:8000 by default), then
``curl -T big.iso http://127.0.0.1:8000/`` (Content-Length) or
``curl -H 'Transfer-Encoding: chunked' -T big.iso http://127.0.0.1:8000/`` (chunked).
From the command line: ``aiowsgi --chdir examples upload_hash:app`` (the app is marked with
``aiowsgi.streaming_input``). Under a server without the streaming input protocol the app
reads its (fully buffered) input the classic way. The answer is JSON:
``{"sha256": "...", "bytes": N}``.

aiowsgi calls the app as soon as the request head is in.  Iterating ``wsgi.input`` yields
the body as it arrives, and the server's sentinel object when nothing has arrived yet: the
app then yields that sentinel from its own response iterable and aiowsgi calls it again once
more body is there.  Meanwhile the same single-threaded worker serves everybody else.
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
    digest = hashlib.sha256()
    count = 0
    stream = environ["wsgi.input"]
    while True:
        block = stream.read(BLOCK)
        if not block:
            break
        digest.update(block)
        count += len(block)
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
    where = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000"
    aiowsgi.serve(app, bind=where if ":" in where else "127.0.0.1:" + where)
