"""A real aiowsgi server in its own process, for the hardening tests (smuggling, slow clients,
soak) and for the sanitizer and valgrind runs that load those tests.

Usage: python tools/hardening_server.py RECORD_FILE [JSON_OPTIONS]

Prints one line, the listening address ("127.0.0.1:PORT"), then serves until SIGTERM. Every
call of the application appends one line "METHOD PATH BODY_LENGTH" to RECORD_FILE (opened,
written and closed per call, so the file is complete whenever the test reads it).

The app answers in every way the server supports, chosen by the path:
  /list        a one-item list                 /list2       a two-item list
  /gen         a generator of 5 chunks         /big         a generator of 1 MiB in 16 KiB chunks
  /write       write() from start_response     /file        wsgi.file_wrapper over a real file
  /filelike    wsgi.file_wrapper over BytesIO  /exc-before  raises before start_response
  /exc-after   raises after the first chunk    /refcount    sys.gettotalrefcount() (debug builds)
  anything else: reads the body, answers its length
With the option "stream_input": true the app reads the body through the would-block sentinel.
"""

import gc
import hashlib
import io
import json
import os
import signal
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
if os.environ.get("AIOWSGI_IMPORT_FROM"):
    sys.path.insert(0, os.environ["AIOWSGI_IMPORT_FROM"])

import aiowsgi  # noqa: E402


def make_app(record_path, file_path, streaming):
    def record(environ, nbytes):
        line = "%s %s %d\n" % (environ["REQUEST_METHOD"], environ["PATH_INFO"], nbytes)
        with open(record_path, "a") as f:
            f.write(line)

    def read_body(environ):
        return environ["wsgi.input"].read()

    def stream_body(environ, out):
        sentinel = environ["aiowsgi.input_sentinel"]
        h = hashlib.sha1()
        n = 0
        for piece in environ["wsgi.input"]:
            if piece is sentinel:
                yield sentinel
                continue
            h.update(piece)
            n += len(piece)
        out.append((n, h.hexdigest()))

    def streaming_app(environ, start_response):
        if environ["PATH_INFO"] == "/refcount":
            return app(environ, start_response)
        return streaming_response(environ, start_response)

    def streaming_response(environ, start_response):
        result = []
        yield from stream_body(environ, result)
        n, digest = result[0]
        record(environ, n)
        body = ("%d %s\n" % (n, digest)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        yield body

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/refcount":
            # debug interpreters only: total references after a full collection
            gc.collect()
            count = getattr(sys, "gettotalrefcount", lambda: -1)()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"%d\n" % count]
        if path == "/exc-before":
            record(environ, 0)
            raise RuntimeError("exception before start_response (expected by the test)")
        body = read_body(environ)
        record(environ, len(body))
        plain = [("Content-Type", "text/plain")]
        if path == "/list":
            start_response("200 OK", plain)
            return [b"hello from a list\n"]
        if path == "/list2":
            start_response("200 OK", plain)
            return [b"two ", b"items\n"]
        if path == "/gen":
            start_response("200 OK", plain)
            return (b"chunk %d\n" % i for i in range(5))
        if path == "/big":
            start_response("200 OK", plain)
            return (b"x" * 16384 for _ in range(64))
        if path == "/write":
            write = start_response("200 OK", plain)
            write(b"written ")
            write(b"twice\n")
            return []
        if path == "/file":
            start_response("200 OK", plain)
            return environ["wsgi.file_wrapper"](open(file_path, "rb"), 8192)
        if path == "/filelike":
            start_response("200 OK", plain)
            return environ["wsgi.file_wrapper"](io.BytesIO(b"y" * 20000), 4096)
        if path == "/exc-after":
            def failing():
                yield b"first chunk\n"
                raise RuntimeError("exception after the headers (expected by the test)")
            start_response("200 OK", plain)
            return failing()
        answer = ("%d %s\n" % (len(body), hashlib.sha1(body).hexdigest())).encode()
        start_response("200 OK", plain + [("Content-Length", str(len(answer)))])
        return [answer]

    if streaming:
        return aiowsgi.streaming_input(streaming_app)
    return app


def main():
    record_path = sys.argv[1]
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    streaming = bool(options.get("stream_input"))
    fd, file_path = tempfile.mkstemp(prefix="aiowsgi-hardening-")
    with os.fdopen(fd, "wb") as f:
        f.write(b"z" * 100000)
    errors = open(os.devnull, "w") if options.pop("quiet_errors", True) else None
    if errors is not None:
        options["errors"] = errors
        options["log"] = lambda level, message, exc: None
    server = aiowsgi.Server(make_app(record_path, file_path, streaming), bind="127.0.0.1:0",
                            **options)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(graceful=False))
    print(server.addresses[0], flush=True)
    try:
        server.serve_forever()
    finally:
        os.unlink(file_path)


if __name__ == "__main__":
    main()
