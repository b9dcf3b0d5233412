"""The WSGI applications the tests serve (in a server process: tests/support/server.py).

Apps record what happens inside the server process by appending ``<id> <event> ...`` lines to
the file named by ``$AIOWSGI_TEST_EVENTS`` (``record``); the id comes from the query string
(``?id=...``), and the server harness reads the lines back (``Server.events``).  ``router``
serves every app below under ``/<name>/...``, so one server process can serve a whole test
module; ``stream_router`` is the same router marked for streaming input (SPEC section 5).
Each app also works alone (``tests.support.apps:hello``).

Query parameters are percent-decoded (``urllib.parse.parse_qs``), so a test can ask for exact
bytes, e.g. a header value with ``%0D%0A`` in it.
"""

import gc
import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import threading
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import WSGIWarning, validator

# A validator warning is a bug in the server: make it an error the test will see (a 500).
warnings.simplefilter("error", WSGIWarning)

EVENTS_ENV = "AIOWSGI_TEST_EVENTS"


def record(ident, *words):
    """Append one event line for ``ident`` to the events file (no-op without one)."""
    path = os.environ.get(EVENTS_ENV)
    if not path or not ident:
        return
    line = " ".join([str(ident)] + [str(w).replace("\n", " ") for w in words]) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def query(environ):
    """The query string as a dict of lists (values percent-decoded as latin-1)."""
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True, encoding="latin-1")


def q1(environ, name, default=None):
    values = query(environ).get(name)
    return values[0] if values else default


def _json(start_response, obj, status="200 OK"):
    body = json.dumps(obj, sort_keys=True).encode("utf-8")
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


# ---------------------------------------------------------------------------------------------
# Basic apps
# ---------------------------------------------------------------------------------------------

def hello(environ, start_response):
    """200, ``Hello, world!\\n`` as a one-item list (the server computes Content-Length)."""
    record(q1(environ, "id"), "call", environ["REQUEST_METHOD"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, world!\n"]


def other(environ, start_response):
    """A second app, to tell two servers apart."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"other app\n"]


def _describe(value):
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, tuple):
        return {"tuple": [_describe(v) for v in value]}
    return {"type": type(value).__name__, "callable": callable(value),
            "attrs": sorted(a for a in ("read", "readline", "readlines", "__iter__", "write",
                                        "writelines", "flush", "seek", "fileno")
                            if hasattr(value, a))}


def environ_json(environ, start_response):
    """The environ as JSON: str values as they are, other values described (type, attrs).
    The body is read (``wsgi.input.read()``) and reported as ``_body`` (latin-1)."""
    record(q1(environ, "id"), "call", environ.get("RAW_URI", environ.get("PATH_INFO")))
    out = {key: _describe(value) for key, value in environ.items()}
    out["_body"] = environ["wsgi.input"].read().decode("latin-1")
    out["_key_types"] = sorted({type(k).__name__ for k in environ})
    out["_value_types"] = {k: type(v).__name__ for k, v in environ.items() if "." not in k}
    if q1(environ, "mutate"):
        environ["HTTP_X_MUTATED"] = "yes"  # must not leak into the next request's environ
    return _json(start_response, out)


def parsed_request(environ, start_response):
    """The request as the server parsed it, for tests/test_parser_agrees_with_h11.py: JSON of
    REQUEST_METHOD, RAW_URI, SERVER_PROTOCOL, PATH_INFO, QUERY_STRING, the header keys
    (``HTTP_*``, ``CONTENT_TYPE``, ``CONTENT_LENGTH``) and the body, str as latin-1.  The answer
    carries ``X-Parsed: 1``, which the server's own answers do not.  Records nothing: it is
    called thousands of times."""
    body = environ["wsgi.input"].read()
    keys = ("REQUEST_METHOD", "RAW_URI", "SERVER_PROTOCOL", "PATH_INFO", "QUERY_STRING")
    out = {key: environ[key] for key in keys}
    out["headers"] = {key: value for key, value in environ.items()
                      if key.startswith("HTTP_") or key in ("CONTENT_TYPE", "CONTENT_LENGTH")}
    out["body"] = body.decode("latin-1")
    data = json.dumps(out, sort_keys=True).encode("utf-8")
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Parsed", "1"),
                              ("Content-Length", str(len(data)))])
    return [data]


def _input_is_file(stream):
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (AttributeError, OSError, ValueError):
        return False


def echo(environ, start_response):
    """Reads the whole body; answers JSON with its length, sha256, the body itself when small
    (latin-1), CONTENT_LENGTH as seen, and whether wsgi.input is a real (spooled) file.
    Records ``call <method> <length>`` once the body is read.  Under streaming input it reads
    through the sentinel (SPEC section 5), so it answers only once the body is complete."""
    if "aiowsgi.input_sentinel" in environ:
        return _echo_streamed(environ, start_response)
    stream = environ["wsgi.input"]
    hasher, small = hashlib.sha256(), bytearray()
    size = 0
    for _ in range(1 << 20):  # bounded: up to 64 GiB in 64 KiB reads
        data = stream.read(65536)
        if not data:
            break
        size = _take_in(hasher, small, size, data)
    return _echo_answer(environ, start_response, hasher, small, size)


def _take_in(hasher, small, size, data):
    hasher.update(data)
    if len(small) < 65536:
        small += data[:65536 - len(small)]
    return size + len(data)


def _echo_streamed(environ, start_response):
    sentinel = environ["aiowsgi.input_sentinel"]
    hasher, small = hashlib.sha256(), bytearray()
    size = 0
    for data in environ["wsgi.input"]:
        if data is sentinel:
            yield sentinel
        else:
            size = _take_in(hasher, small, size, data)
    yield from _echo_answer(environ, start_response, hasher, small, size)


def _echo_answer(environ, start_response, hasher, small, size):
    stream = environ["wsgi.input"]
    record(q1(environ, "id"), "call", environ["REQUEST_METHOD"], size)
    return _json(start_response, {
        "length": size, "sha256": hasher.hexdigest(),
        "body": bytes(small).decode("latin-1") if size <= 65536 else None,
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
        "input_type": type(stream).__name__,
        "input_is_file": _input_is_file(stream),
        "input_terminated": environ.get("wsgi.input_terminated"),
        "trailer": environ.get("HTTP_X_TRAILER"),
    })


def ignore_body(environ, start_response):
    """Answers without reading the request body."""
    record(q1(environ, "id"), "call")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "7")])
    return [b"ignored"]


def input_ops(environ, start_response):
    """Runs the ``wsgi.input`` operations named in ``?ops=`` on the body and answers their
    results as JSON (bytes as latin-1 str).  Ops, comma-separated: ``read``, ``read:N``,
    ``readline``, ``readline:N``, ``readlines``, ``readlines:HINT``, ``iter``, ``seek:N``,
    ``tell``."""
    stream = environ["wsgi.input"]
    results = []
    for op in q1(environ, "ops", "").split(","):
        name, _, arg = op.partition(":")
        args = (int(arg),) if arg else ()
        if name == "read":
            results.append(stream.read(*args).decode("latin-1"))
        elif name == "readline":
            results.append(stream.readline(*args).decode("latin-1"))
        elif name == "readlines":
            results.append([line.decode("latin-1") for line in stream.readlines(*args)])
        elif name == "iter":
            results.append([line.decode("latin-1") for line in stream])
        elif name == "seek":
            stream.seek(*args)
            results.append(None)
        elif name == "tell":
            results.append(stream.tell())
        else:
            raise ValueError("unknown op %r" % op)
    return _json(start_response, {"results": results, "input_is_file": _input_is_file(stream)})


def errors_stream(environ, start_response):
    """Writes ``?text=`` to ``wsgi.errors`` (write, then writelines, then flush)."""
    text = q1(environ, "text", "")
    environ["wsgi.errors"].write(text + " via write\n")
    environ["wsgi.errors"].writelines([text + " via writelines\n"])
    environ["wsgi.errors"].flush()
    start_response("200 OK", [("Content-Length", "0")])
    return [b""]


def reporting_app(version="1", name="reporting"):
    """An app that answers JSON about where it runs: its process and parent (a worker and its
    master), ``version``, ``name``, REMOTE_ADDR, the URL scheme, wsgi.multiprocess and the path.
    ``/sleep?S`` sleeps S seconds first, ``/errors`` writes to wsgi.errors, ``/fail`` raises.
    The command-line tests serve it from an ``app.py`` of their own (server.write_cli_app)."""

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/sleep":
            time.sleep(float(environ["QUERY_STRING"] or "2"))
        elif path == "/errors":
            environ["wsgi.errors"].write("message for the error log\n")
        elif path == "/fail":
            raise RuntimeError("the app failed on purpose")
        return _json(start_response, {
            "pid": os.getpid(), "ppid": os.getppid(), "version": version, "app": name,
            "remote_addr": environ.get("REMOTE_ADDR"), "scheme": environ["wsgi.url_scheme"],
            "multiprocess": environ["wsgi.multiprocess"], "path": path})

    return app


reporting = reporting_app()


def refcount(environ, start_response):
    """The interpreter's total reference count after a full collection (debug builds of
    CPython have sys.gettotalrefcount; -1 elsewhere): the leak soak watches it."""
    gc.collect()
    count = getattr(sys, "gettotalrefcount", lambda: -1)()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d\n" % count]


# ---------------------------------------------------------------------------------------------
# Response framing, driven by the query string
# ---------------------------------------------------------------------------------------------

def scripted(environ, start_response):
    """A response described by the query string:

    ``status`` (default "200 OK"), ``part`` (repeatable: the body items, default "hello"),
    ``kind``: ``list`` (default), ``tuple``, ``gen`` (a generator), ``write`` (every part through
    ``write()``, then ``[]``), ``writegen`` (first part through ``write()``, the rest from a
    generator), ``empty`` (``[]``), ``emptygen`` (a generator of nothing);
    ``h`` (repeatable ``Name:Value`` response headers, exact bytes as latin-1),
    ``cl`` (a Content-Length header)."""
    qs = query(environ)
    status = qs.get("status", ["200 OK"])[0]
    parts = [p.encode("latin-1") for p in qs.get("part", ["hello"])]
    headers = [("Content-Type", "text/plain")]
    for h in qs.get("h", []):
        name, _, value = h.partition(":")
        headers.append((name, value))
    if "cl" in qs:
        headers.append(("Content-Length", qs["cl"][0]))
    kind = qs.get("kind", ["list"])[0]
    record(q1(environ, "id"), "call", kind)
    write = start_response(status, headers)
    if kind == "list":
        return list(parts)
    if kind == "tuple":
        return tuple(parts)
    if kind == "gen":
        return (p for p in parts)
    if kind == "write":
        for p in parts:
            write(p)
        return []
    if kind == "writegen":
        write(parts[0])
        return (p for p in parts[1:])
    if kind == "empty":
        return []
    if kind == "emptygen":
        return (p for p in ())
    raise ValueError("unknown kind %r" % kind)


def stream(environ, start_response):
    """``?chunks=N&size=S``: a generator of N chunks of S bytes; chunk i is all byte i % 256.
    Records ``pulled <i>`` every 16 chunks and ``close`` when closed."""
    ident = q1(environ, "id")
    count = int(q1(environ, "chunks", "16"))
    size = int(q1(environ, "size", "65536"))

    def generate():
        try:
            for i in range(count):
                if i % 16 == 0:
                    record(ident, "pulled", i)
                yield bytes([i % 256]) * size
            record(ident, "end")
        finally:
            record(ident, "close")

    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return generate()


class LoggedFile(io.BufferedReader):
    """A real binary file (io's own read(): the server may sendfile it) that records its
    close()."""

    def __init__(self, path, ident):
        super().__init__(io.FileIO(path))
        self.ident = ident

    def close(self):
        if not self.closed:
            record(self.ident, "close")
        super().close()


class LoggedBytesIO(io.BytesIO):
    """Bytes in memory, no file descriptor: the server iterates it."""

    def __init__(self, data, ident):
        super().__init__(data)
        self.ident = ident

    def close(self):
        if not self.closed:
            record(self.ident, "close")
        super().close()


class DuckFile:
    """A file-like object of its own (read, seek, tell, fileno of a real file, close): it has
    a descriptor, but its read() is not io's, so the server must iterate it."""

    def __init__(self, path, ident):
        self.f = open(path, "rb")
        self.ident = ident

    def read(self, n=-1):
        return self.f.read(n)

    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()

    def fileno(self):
        return self.f.fileno()

    def close(self):
        record(self.ident, "close")
        self.f.close()


def _open_for_wrapper(kind, path, ident):
    if kind == "file":
        return LoggedFile(path, ident)
    if kind == "duck":
        return DuckFile(path, ident)
    if kind == "bytesio":
        with open(path, "rb") as f:
            return LoggedBytesIO(f.read(), ident)
    if kind == "gzip":  # read() decompresses; fileno() is the compressed file's
        return gzip.open(path, "rb")
    if kind == "pipe":  # a pipe: no sendfile, read() until EOF
        return subprocess.Popen(["cat", path], stdout=subprocess.PIPE).stdout
    raise ValueError("unknown kind %r" % kind)


def file_wrapper(environ, start_response):
    """Sends the file ``?path=`` through ``wsgi.file_wrapper`` (block size ``?blksize=``,
    default 65536).  ``?kind=``: ``file`` (default, a LoggedFile), ``duck`` (a DuckFile),
    ``bytesio`` (its bytes in a LoggedBytesIO), ``gzip`` (a GzipFile), ``pipe`` (``cat``'s
    stdout); the first three record ``close``.  ``?offset=N``: the app seeks there first,
    ``?read_first=N``: the app reads N bytes first (the response starts at the file
    position); ``?cl=1``: a Content-Length of what is left of the file, ``?cl=N``: N;
    ``?status=``: the status line; ``?write_first=1``: ``write()`` a line before returning
    the wrapper."""
    ident = q1(environ, "id")
    path = q1(environ, "path")
    f = _open_for_wrapper(q1(environ, "kind", "file"), path, ident)
    offset = int(q1(environ, "offset", "0"))
    if offset:
        f.seek(offset)
    if q1(environ, "read_first"):
        f.read(int(q1(environ, "read_first")))  # a buffered reader reads ahead much more
        offset = f.tell()
    headers = [("Content-Type", "application/octet-stream")]
    first = b"written first\n" if q1(environ, "write_first") else b""
    cl = q1(environ, "cl")
    if cl:
        size = len(first) + os.path.getsize(path) - offset if cl == "1" else int(cl)
        headers.append(("Content-Length", str(size)))
    write = start_response(q1(environ, "status", "200 OK"), headers)
    if first:
        write(first)  # PEP 3333's write(), then an iterable: both go out
    return environ["wsgi.file_wrapper"](f, int(q1(environ, "blksize", "65536")))


# ---------------------------------------------------------------------------------------------
# close() and start_response rules
# ---------------------------------------------------------------------------------------------

class ClosingIterable:
    """An iterable with ``close()`` that records each call (``close <items pulled>``), and
    ``end`` once exhausted.  ``?mode=``: ``normal`` (parts then stop), ``raise`` (one part,
    then RuntimeError), ``endless`` (64 KiB chunks, bounded at 1 GiB), ``bad_item`` (one str
    item), ``close_raises`` (two parts; close() raises).
    ``start_response`` is called in the first ``__next__`` (PEP 3333 allows that), so even an
    invalid status reaches an iterable whose ``close()`` the server owes."""

    def __init__(self, ident, mode, start):
        self.ident = ident
        self.mode = mode
        self.start = start
        self.i = 0

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._next()
        except StopIteration:
            record(self.ident, "end")
            raise

    def _next(self):
        if self.start is not None:
            start, self.start = self.start, None
            start()
        self.i += 1
        if self.mode == "normal":
            if self.i > 3:
                raise StopIteration
            return b"part%d;" % self.i
        if self.mode == "raise":
            if self.i > 1:
                raise RuntimeError("closing-iterable-raised")
            return b"first;"
        if self.mode == "endless":
            if self.i > 16384:
                raise StopIteration
            return b"x" * 65536
        if self.mode == "bad_item":
            return "not bytes"
        if self.mode == "close_raises":
            if self.i > 2:
                raise StopIteration
            return b"item%d;" % self.i
        raise ValueError(self.mode)

    def close(self):
        record(self.ident, "close", self.i)
        if self.mode == "close_raises":
            raise RuntimeError("close-raised " + str(self.ident))


def closing(environ, start_response):
    ident = q1(environ, "id")
    mode = q1(environ, "mode", "normal")
    status = q1(environ, "status", "200 OK")
    record(ident, "call", mode)
    time.sleep(min(float(q1(environ, "sleep", "0")), 5.0))  # ?sleep=: the client may leave
    return ClosingIterable(ident, mode,
                           lambda: start_response(status, [("Content-Type", "text/plain")]))


def exc_info_before_body(environ, start_response):
    """An error after start_response but before any body: replaced via exc_info (allowed)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("replace me")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       sys.exc_info())
    return [b"replaced"]


def _restart_after_body(ident, start_response, error):
    """Raise ``error``, then call start_response with its exc_info, as an app does on an
    error; body bytes are out, so PEP 3333 says it must re-raise.  Records what it did."""
    try:
        raise error
    except type(error):
        try:
            start_response("500 Internal Server Error", [], sys.exc_info())
        except BaseException as exc:
            record(ident, "reraised", type(exc).__name__)
            raise
        record(ident, "not-reraised")


def exc_info_after_body(environ, start_response):
    """exc_info after the first body bytes: start_response must re-raise it."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"first part;"
        _restart_after_body(q1(environ, "id"), start_response, ValueError("late-error-marker"))
        yield b"must not be sent"

    return generate()


def exc_info_after_write(environ, start_response):
    """exc_info after write() sent body bytes: start_response must re-raise it."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    _restart_after_body(q1(environ, "id"), start_response, KeyError("after-write-marker"))
    return [b"must not be sent"]


def start_response_twice(environ, start_response):
    """start_response called twice without exc_info: the second call must raise."""
    ident = q1(environ, "id")
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain")])
    except BaseException as exc:
        record(ident, "raised", type(exc).__name__)
        raise
    record(ident, "not-raised")
    return [b"second start_response accepted"]


def many_items(environ, start_response):
    """``?n=N&size=S&kind=list|gen|write``: N items of S bytes; item i is ``i % 10`` digits."""
    n = int(q1(environ, "n", "3000"))
    size = int(q1(environ, "size", "1"))
    kind = q1(environ, "kind", "list")
    items = [(b"%d" % (i % 10)) * size for i in range(n)]
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if kind == "gen":
        return iter(items)
    if kind == "write":
        for item in items:
            write(item)
        return []
    return items


def big_headers(environ, start_response):
    """``?n=N&size=S``: N response headers ``X-Big-i`` with S-byte values."""
    n = int(q1(environ, "n", "100"))
    size = int(q1(environ, "size", "1000"))
    headers = [("X-Big-%d" % i, chr(97 + i % 26) * size) for i in range(n)]
    start_response("200 OK", headers + [("Content-Type", "text/plain")])
    return [b"big headers"]


def slow_start(environ, start_response):
    """Sleeps ``?s=`` seconds (bounded at 5) inside the app call, then answers."""
    time.sleep(min(float(q1(environ, "s", "0.5")), 5.0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


def gate(environ, start_response):
    """Records ``entered`` (with the thread it runs on), then waits (bounded at 10 s) until the
    file ``?open=`` exists, records ``left`` and answers ``?id=``."""
    ident, path = q1(environ, "id", ""), q1(environ, "open", "")
    record(ident, "entered", threading.get_ident())
    deadline = time.monotonic() + 10
    while path and not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    record(ident, "left")
    body = ident.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def gated_stream(environ, start_response):
    """A generator with a Content-Length: yields ``first;``, records ``waiting``, waits (bounded
    at 10 s) until the file ``?open=`` exists, then yields ``?id=``."""
    ident, path = q1(environ, "id", ""), q1(environ, "open", "")
    body = [b"first;", ident.encode()]

    def generate():
        yield body[0]
        record(ident, "waiting")
        deadline = time.monotonic() + 10
        while path and not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        yield body[1]

    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(sum(map(len, body))))])
    return generate()


def write_flood(environ, start_response):
    """``write()`` ``?mib=`` pieces of 1 MiB, recording ``wrote N`` after each."""
    ident = q1(environ, "id", "")
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    piece = b"w" * (1 << 20)
    for i in range(int(q1(environ, "mib", "64"))):
        write(piece)
        record(ident, "wrote", i + 1)
    return []


def write_then_return(environ, start_response):
    """``write()`` two parts, then return a list of one more."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-1;")
    write(b"written-2;")
    return [b"returned"]


# ---------------------------------------------------------------------------------------------
# App errors
# ---------------------------------------------------------------------------------------------

def raise_before_headers(environ, start_response):
    raise RuntimeError("boom-before-headers " + q1(environ, "id", ""))


def raise_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError("boom-after-start " + q1(environ, "id", ""))


def raise_in_generator(environ, start_response):
    ident = q1(environ, "id", "")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"partial body;" * 100
        raise RuntimeError("boom-in-generator " + ident)

    return generate()


def no_start_response(environ, start_response):
    return [b"never started"]


def returns_none(environ, start_response):
    start_response("200 OK", [])
    return None


def bad_response(environ, start_response):
    """``?case=``: an invalid response of the named kind (see the table below)."""
    case = q1(environ, "case")
    status, headers, body = "200 OK", [("Content-Type", "text/plain")], [b"should not be sent"]
    if case == "str_item":
        body = ["a str, not bytes"]
    elif case == "int_item":
        body = [b"ok", 42]
    elif case == "bytes_status":
        status = b"200 OK"
    elif case == "int_header_value":
        headers.append(("X-Number", 42))
    elif case == "bytes_header_name":
        headers.append((b"X-Bytes", "v"))
    elif case == "header_not_tuple":
        headers.append("X-Flat: v")
    elif case == "headers_not_list":
        headers = {"Content-Type": "text/plain"}
    elif case == "non_latin1_header_value":
        headers.append(("X-Euro", "\u20ac"))
    elif case == "non_latin1_status":
        status = "200 \u20ac"
    elif case == "returns_str":
        start_response(status, headers)
        return "a str body"
    elif case == "write_str":
        start_response(status, headers)("a str through write()")
        return [b"should not be sent"]
    else:
        raise ValueError(case)
    start_response(status, headers)
    return body


# ---------------------------------------------------------------------------------------------
# wsgiref.validate wrappers (a validator failure raises: the test sees a 500 / cut response)
# ---------------------------------------------------------------------------------------------

def _validated_body_app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    first = stream.readline(1 << 16) if length else b""
    rest = stream.read(length - len(first)) if length > len(first) else b""
    body = first + rest
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _validated_gen_app(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"via write;")

    def generate():
        for i in range(3):
            yield b"item %d;" % i

    return generate()


validated_hello = validator(hello)
validated_echo = validator(_validated_body_app)
validated_gen = validator(_validated_gen_app)


# ---------------------------------------------------------------------------------------------
# Streaming input (SPEC section 5): apps marked with aiowsgi.streaming_input
# ---------------------------------------------------------------------------------------------

class Logged:
    """A response iterable around the iterator ``it`` that records ``close`` when closed."""

    def __init__(self, ident, it):
        self.ident = ident
        self.it = it

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.it)

    def close(self):
        record(self.ident, "close")
        self.it.close()


def stream_hash(environ, start_response):
    """Hashes the body as it arrives: iterates ``wsgi.input``, yielding the sentinel while
    nothing is buffered; answers JSON (length, sha256, waits, chunks, max_piece, sentinel_id,
    same_key, content_length, first_read).  Records ``call`` at once, then ``data <total>``
    and ``sentinel <total>`` as the body comes, ``done <total>`` or ``raised <exception>
    <is an OSError> <total>``, and ``close``.  ``?first_read=1``: calls read() in the app call
    itself, before any of the body can be there (``first_read``: what it got)."""
    ident = q1(environ, "id")
    record(ident, "call")
    sentinel = environ["aiowsgi.input_sentinel"]
    stream = environ["wsgi.input"]
    first_read = None
    if q1(environ, "first_read"):
        try:
            first_read = "data %d" % len(stream.read(10))
        except BlockingIOError:
            first_read = "BlockingIOError"

    def generate():
        hasher, size, waits, chunks, max_piece = hashlib.sha256(), 0, 0, 0, 0
        try:
            for piece in stream:
                if piece is sentinel:
                    waits += 1
                    record(ident, "sentinel", size)
                    yield sentinel
                    continue
                assert type(piece) is bytes and piece, repr(piece)[:80]
                hasher.update(piece)
                size += len(piece)
                chunks += 1
                max_piece = max(max_piece, len(piece))
                record(ident, "data", size)
        except Exception as exc:
            record(ident, "raised", type(exc).__name__, isinstance(exc, OSError), size)
            raise
        record(ident, "done", size)
        yield from _json(start_response, {
            "length": size, "sha256": hasher.hexdigest(), "waits": waits, "chunks": chunks,
            "max_piece": max_piece, "sentinel_id": id(sentinel),
            "same_key": environ.get("wsgi.input_sentinel") is sentinel,
            "content_length": environ.get("CONTENT_LENGTH"), "first_read": first_read})

    return Logged(ident, generate())


def _read_pieces(stream, mode, n):
    """One read of a streamed body: read(n), readline() or readlines() (joined)."""
    if mode == "readline":
        return stream.readline()
    if mode == "readlines":
        return b"".join(stream.readlines())
    return stream.read(n)


def stream_read(environ, start_response):
    """Reads the body with ``read(n)`` (``?n=``, default -1), ``readline()``
    (``?mode=readline``) or ``readlines()`` (``?mode=readlines``), yielding the sentinel on
    BlockingIOError; answers JSON: the pieces (``lengths``, ``lines``; ``body`` when small;
    ``sha256``), how often it was ``blocked``, the size of each call's answer (``calls``) and
    whether read, readline and read(n) all give b"" at the end (``empty_after_end``).
    ``?mode=stall``: reads once (so 100 Continue goes out), then only yields the sentinel,
    recording ``resumed <i>`` every 64 resumptions.  Records ``done`` and ``close``."""
    ident = q1(environ, "id")
    sentinel = environ["aiowsgi.input_sentinel"]
    stream = environ["wsgi.input"]
    n = int(q1(environ, "n", "-1"))
    mode = q1(environ, "mode", "read")

    def stall():
        try:
            stream.read(1)
        except BlockingIOError:
            pass
        for i in range(1 << 20):  # bounded
            if i % 64 == 0:
                record(ident, "resumed", i)
            yield sentinel
        record(ident, "gave-up")
        raise RuntimeError("a stalled app was resumed %d times" % (1 << 20))

    def generate():
        pieces, calls = [], []
        for _ in range(1 << 20):  # bounded
            try:
                piece = _read_pieces(stream, mode, n)
            except BlockingIOError:
                calls.append("blocked")
                yield sentinel
                continue
            calls.append(len(piece))
            if not piece:
                break
            pieces.append(piece)
        again = [stream.read(n), stream.readline(), stream.read()]
        body = b"".join(pieces)
        record(ident, "done", len(pieces), calls.count("blocked"))
        yield from _json(start_response, {
            "lengths": [len(p) for p in pieces], "blocked": calls.count("blocked"),
            "lines": [p.decode("latin-1") for p in pieces] if len(body) <= 65536 else None,
            "body": body.decode("latin-1") if len(body) <= 65536 else None,
            "sha256": hashlib.sha256(body).hexdigest(), "calls": calls,
            "empty_after_end": again == [b"", b"", b""]})

    return Logged(ident, stall() if mode == "stall" else generate())


def stream_ignore(environ, start_response):
    """Answers at once without reading the body."""
    record(q1(environ, "id"), "call")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not read.\n"]


def stream_echo(environ, start_response):
    """Sends each piece of the body back as it arrives (a chunked response); the sentinel is
    passed through, so the server waits for more."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return Logged(q1(environ, "id"), (piece for piece in environ["wsgi.input"]))


def stream_fail(environ, start_response):
    """An app bug in the middle of the body: raises once the first data is in."""
    sentinel = environ["aiowsgi.input_sentinel"]

    def generate():
        for piece in environ["wsgi.input"]:
            if piece is sentinel:
                yield sentinel
                continue
            raise ValueError("the app failed after %d bytes" % len(piece))
        yield b"never"

    return Logged(q1(environ, "id"), generate())


def stream_progress(environ, start_response):
    """``write()`` between sentinels: one progress line per piece as the body arrives."""
    sentinel = environ["aiowsgi.input_sentinel"]
    write = start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        total = 0
        for piece in environ["wsgi.input"]:
            if piece is sentinel:
                yield sentinel
                continue
            total += len(piece)
            write(b"%d\n" % total)
        yield b"done %d\n" % total

    return Logged(q1(environ, "id"), generate())


# ---------------------------------------------------------------------------------------------
# The router: /<app name>/anything -> that app
# ---------------------------------------------------------------------------------------------

ROUTES = {
    "hello": hello, "other": other, "environ": environ_json, "echo": echo,
    "ignore_body": ignore_body, "input_ops": input_ops, "errors_stream": errors_stream,
    "reporting": reporting, "refcount": refcount, "slow_start": slow_start,
    "scripted": scripted, "stream": stream, "file_wrapper": file_wrapper, "closing": closing,
    "exc_info_before_body": exc_info_before_body, "exc_info_after_body": exc_info_after_body,
    "start_response_twice": start_response_twice, "exc_info_after_write": exc_info_after_write,
    "write_then_return": write_then_return, "gate": gate, "gated_stream": gated_stream,
    "write_flood": write_flood,
    "raise_before_headers": raise_before_headers, "raise_after_start": raise_after_start,
    "raise_in_generator": raise_in_generator, "no_start_response": no_start_response,
    "returns_none": returns_none, "bad_response": bad_response,
    "validated_hello": validated_hello, "validated_echo": validated_echo,
    "validated_gen": validated_gen, "many_items": many_items, "big_headers": big_headers,
    "stream_hash": stream_hash, "stream_read": stream_read, "stream_ignore": stream_ignore,
    "stream_echo": stream_echo, "stream_fail": stream_fail, "stream_progress": stream_progress,
}


def router(environ, start_response):
    """Dispatches on the first path segment; every call is recorded as ``router call <RAW_URI>``
    (so a test can tell the app was not called for a request the server refused).  The
    ``stream_*`` apps need streaming input: ``stream_router``, or the option."""
    record("router", "call", environ.get("RAW_URI") or environ.get("PATH_INFO"))
    name = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    app = ROUTES.get(name)
    if app is None:
        record(q1(environ, "id"), "call", "404")
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no app " + name.encode("latin-1", "replace")]
    return app(environ, start_response)


def stream_router(environ, start_response):
    """The router, marked with ``aiowsgi.streaming_input``: every request streams."""
    return router(environ, start_response)


def _mark_streaming():
    import aiowsgi  # imported late: apps.py loads without the core

    aiowsgi.streaming_input(stream_router)


_mark_streaming()


# ---------------------------------------------------------------------------------------------
# Framework apps, built on first use (``tests.support.apps:bottle_app``, ``:flask_app``)
# ---------------------------------------------------------------------------------------------

def _make_bottle_app():
    import bottle

    app = bottle.Bottle()

    @app.get("/hello/<name>")
    def hello_name(name):
        return "Hello, %s!" % name

    @app.get("/json")
    def as_json():
        return {"framework": "bottle", "items": [1, 2, 3]}

    @app.post("/form")
    def form():
        return {"name": bottle.request.forms.getunicode("name"),
                "n": int(bottle.request.forms.get("n"))}

    @app.post("/json")
    def post_json():
        data = bottle.request.json
        return {"sum": sum(data["values"])}

    @app.get("/status")
    def status():
        bottle.response.status = 418
        return "teapot"

    return app


def _make_flask_app():
    import flask

    app = flask.Flask("aiowsgi_tests")

    @app.get("/hello/<name>")
    def hello_name(name):
        return "Hello, %s!" % name

    @app.get("/json")
    def as_json():
        return flask.jsonify(framework="flask", items=[1, 2, 3])

    @app.post("/form")
    def form():
        return flask.jsonify(name=flask.request.form["name"], n=int(flask.request.form["n"]))

    @app.post("/json")
    def post_json():
        return flask.jsonify(sum=sum(flask.request.get_json()["values"]))

    @app.get("/stream")
    def streamed():
        def generate():
            for i in range(5):
                yield "line %d\n" % i
        return flask.Response(generate(), mimetype="text/plain")

    @app.get("/missing")
    def missing():
        flask.abort(404)

    return app


_LAZY = {"bottle_app": _make_bottle_app, "flask_app": _make_flask_app}


def __getattr__(name):  # PEP 562: build framework apps only when asked for
    if name in _LAZY:
        value = _LAZY[name]()
        globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
