"""Hash uploads of any size in constant memory with aiowsgi's streaming input (SPEC section 5).

Run it, then send it something big, even chunked, even slowly::

    python examples/streaming_upload.py                 # serves on 127.0.0.1:8000
    python examples/streaming_upload.py 127.0.0.1:9000  # another HOST:PORT
    aiowsgi --chdir examples streaming_upload:app       # the command line

    curl -T big.iso http://127.0.0.1:8000/                                  # Content-Length
    curl -H 'Transfer-Encoding: chunked' -T big.iso http://127.0.0.1:8000/  # chunked

The answer is JSON: ``{"size": ..., "sha256": "..."}``.  While an upload trickles in, the single
worker keeps answering every other client, because the app hands the loop back (by yielding
the sentinel) whenever no body data is buffered.  Under a server without streaming input
(gunicorn, waitress, or aiowsgi for an app not marked) the same app still works: it reads the
fully buffered ``wsgi.input`` block by block.
"""

import hashlib
import json
import sys

import aiowsgi


def read_blocks(environ, size=65536):
    """Read a non-streamed body: to its end when the server says it is terminated
    (``wsgi.input_terminated``, as aiowsgi does), else exactly ``CONTENT_LENGTH`` bytes."""
    body = environ["wsgi.input"]
    left = None if environ.get("wsgi.input_terminated") else int(environ.get("CONTENT_LENGTH") or 0)
    while left is None or left > 0:
        block = body.read(size if left is None else min(size, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


@aiowsgi.streaming_input  # ask aiowsgi to call this app as soon as the request head is in
def app(environ, start_response):
    # A generator: the server pulls it, and may pause it each time it yields the sentinel.
    digest = hashlib.sha256()
    size = 0
    body = environ["wsgi.input"]
    sentinel = environ.get("aiowsgi.input_sentinel")
    if sentinel is None:  # not streaming: wsgi.input is an ordinary file-like object
        for block in read_blocks(environ):
            digest.update(block)
            size += len(block)
    else:
        for block in body:  # bytes as they arrive, the sentinel when none are buffered
            if block is sentinel:
                yield sentinel  # "wake me up when there is more"; never sent to the client
                continue
            digest.update(block)
            size += len(block)
    answer = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(answer)))])
    yield answer


if __name__ == "__main__":
    aiowsgi.serve(app, bind=sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8000")
