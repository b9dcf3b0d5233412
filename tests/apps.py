"""WSGI applications served by the tests (in a server subprocess, see tests/support.py).

Apps record what happens inside the server process by appending ``<id> <event> ...`` lines to
the file named by ``$AIOWSGI_TEST_EVENTS`` (``record``); the id comes from the query string
(``?id=...``).  ``router`` serves every app below under ``/<name>/...``, so one server process can
be shared by a whole test module; each app also works alone (``tests.apps:hello``).

Query parameters are percent-decoded (``urllib.parse.parse_qs``), so a test can ask for exact
bytes, e.g. a header value with ``%0D%0A`` in it.
"""

import hashlib
import io
import json
import os
import stat
import sys
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
    (latin-1), CONTENT_LENGTH as seen, and whether wsgi.input is a real (spooled) file."""
    stream = environ["wsgi.input"]
    is_file = _input_is_file(stream)
    hasher = hashlib.sha256()
    size = 0
    small = bytearray()
    for _ in range(1 << 20):  # bounded: up to 64 GiB in 64 KiB reads
        data = stream.read(65536)
        if not data:
            break
        hasher.update(data)
        size += len(data)
        if len(small) < 65536:
            small += data[:65536 - len(small)]
    record(q1(environ, "id"), "call", environ["REQUEST_METHOD"], size)
    return _json(start_response, {
        "length": size, "sha256": hasher.hexdigest(),
        "body": bytes(small).decode("latin-1") if size <= 65536 else None,
        "content_length": environ.get("CONTENT_LENGTH"),
        "content_type": environ.get("CONTENT_TYPE"),
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
        "input_type": type(stream).__name__,
        "input_is_file": is_file,
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


def file_wrapper(environ, start_response):
    """Sends the file ``?path=`` through ``wsgi.file_wrapper``; records ``close`` when the
    wrapped file is closed.  ``?cl=1``: a Content-Length of the file's size (``?cl=N``: N);
    ``?offset=N``: the app seeks there first (the response starts at the file position);
    ``?bytesio=1``: the file's bytes in an ``io.BytesIO`` (its fileno() raises: iterated)."""
    ident = q1(environ, "id")
    path = q1(environ, "path")

    class TrackedFile:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            return self.f.read(n)

        def seek(self, *args):
            return self.f.seek(*args)

        def tell(self):
            return self.f.tell()

        def fileno(self):
            return self.f.fileno()

        def close(self):
            record(ident, "close")
            self.f.close()

    if q1(environ, "bytesio"):
        with open(path, "rb") as raw:
            f = TrackedFile(io.BytesIO(raw.read()))
    else:
        f = TrackedFile(open(path, "rb"))
    offset = int(q1(environ, "offset", "0"))
    if offset:
        f.seek(offset)
    headers = [("Content-Type", "application/octet-stream")]
    cl = q1(environ, "cl")
    if cl:
        size = os.path.getsize(path) - offset if cl == "1" else int(cl)
        headers.append(("Content-Length", str(size)))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, 65536)


# ---------------------------------------------------------------------------------------------
# close() and start_response rules
# ---------------------------------------------------------------------------------------------

class ClosingIterable:
    """An iterable with ``close()`` that records each call.  ``?mode=``: ``normal`` (parts then
    stop), ``raise`` (one part, then RuntimeError), ``endless`` (64 KiB chunks, bounded at
    1 GiB), ``bad_item`` (one str item), ``close_raises`` (two parts; close() raises).
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


def exc_info_after_body(environ, start_response):
    """exc_info after the first body bytes: start_response must re-raise it (PEP 3333)."""
    ident = q1(environ, "id")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def generate():
        yield b"first part;"
        try:
            raise ValueError("late-error-marker")
        except ValueError:
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except BaseException as exc:
                record(ident, "reraised", type(exc).__name__, exc)
                raise
            record(ident, "not-reraised")
        yield b"must not be sent"

    return generate()


def exc_info_after_write(environ, start_response):
    """exc_info after write() sent body bytes: start_response must re-raise it (PEP 3333)."""
    ident = q1(environ, "id")
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written;")
    try:
        raise KeyError("after-write-marker")
    except KeyError:
        try:
            start_response("500 Internal Server Error", [], sys.exc_info())
        except BaseException as exc:
            record(ident, "reraised", type(exc).__name__)
            raise
        record(ident, "not-reraised")
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

def _streaming(app):
    """``aiowsgi.streaming_input(app)``, imported late so apps.py loads without the core."""
    import aiowsgi

    return aiowsgi.streaming_input(app)


def stream_hash(environ, start_response):
    """Hashes the body as it arrives by iterating ``wsgi.input`` and yielding the sentinel
    while nothing is buffered; answers JSON (length, sha256, how often it waited, the id of
    the sentinel).  Records ``call`` at once, ``done``, or the exception the input raised."""
    ident = q1(environ, "id")
    record(ident, "call")
    sentinel = environ["aiowsgi.input_sentinel"]
    stream = environ["wsgi.input"]

    def generate():
        hasher, size, waits, max_piece = hashlib.sha256(), 0, 0, 0
        try:
            for piece in stream:
                if piece is sentinel:
                    waits += 1
                    yield sentinel
                    continue
                assert isinstance(piece, bytes), type(piece)
                hasher.update(piece)
                size += len(piece)
                max_piece = max(max_piece, len(piece))
        except Exception as exc:
            record(ident, "raised", type(exc).__name__, isinstance(exc, OSError))
            raise
        record(ident, "done", size)
        body = json.dumps({"length": size, "sha256": hasher.hexdigest(), "waits": waits,
                           "max_piece": max_piece, "sentinel_id": id(sentinel),
                           "same_key": environ.get("wsgi.input_sentinel") is sentinel,
                           "content_length": environ.get("CONTENT_LENGTH")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        yield body

    class Closing:
        def __init__(self):
            self.it = generate()

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)

        def close(self):
            record(ident, "close")
            self.it.close()

    return Closing()


def stream_read(environ, start_response):
    """Reads the body with ``read(n)`` (``?n=``, default 1000) or ``readline()``
    (``?mode=readline``), catching BlockingIOError and yielding the sentinel; answers JSON
    with the pieces' lengths and the body (latin-1).  ``?mode=stall``: reads once, then only
    yields the sentinel (a consumer that stopped consuming), recording ``resumed <i>`` every
    64 resumptions."""
    ident = q1(environ, "id")
    sentinel = environ["aiowsgi.input_sentinel"]
    stream = environ["wsgi.input"]
    n = int(q1(environ, "n", "1000"))
    mode = q1(environ, "mode", "read")

    def generate():
        pieces, blocked = [], 0
        if mode == "stall":  # read once (so 100 Continue goes out), then never again
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
        for _ in range(1 << 20):  # bounded
            try:
                piece = stream.readline() if mode == "readline" else stream.read(n)
            except BlockingIOError:
                blocked += 1
                yield sentinel
                continue
            if not piece:
                break
            pieces.append(piece)
        record(ident, "done", len(pieces), blocked)
        body = json.dumps({"lengths": [len(p) for p in pieces], "blocked": blocked,
                           "body": b"".join(pieces).decode("latin-1"),
                           "lines": [p.decode("latin-1") for p in pieces]}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        yield body

    return generate()


def stream_ignore(environ, start_response):
    """A streaming app that answers at once without reading the body."""
    record(q1(environ, "id"), "call")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
    return [b"not read.\n"]


stream_hash = _streaming(stream_hash)
stream_read = _streaming(stream_read)
stream_ignore = _streaming(stream_ignore)


# ---------------------------------------------------------------------------------------------
# The router: /<app name>/anything -> that app
# ---------------------------------------------------------------------------------------------

ROUTES = {
    "hello": hello, "other": other, "environ": environ_json, "echo": echo,
    "ignore_body": ignore_body, "input_ops": input_ops, "errors_stream": errors_stream,
    "scripted": scripted, "stream": stream, "file_wrapper": file_wrapper, "closing": closing,
    "exc_info_before_body": exc_info_before_body, "exc_info_after_body": exc_info_after_body,
    "start_response_twice": start_response_twice, "exc_info_after_write": exc_info_after_write,
    "write_then_return": write_then_return,
    "raise_before_headers": raise_before_headers, "raise_after_start": raise_after_start,
    "raise_in_generator": raise_in_generator, "no_start_response": no_start_response,
    "returns_none": returns_none, "bad_response": bad_response,
    "validated_hello": validated_hello, "validated_echo": validated_echo,
    "validated_gen": validated_gen, "many_items": many_items, "big_headers": big_headers,
}


def router(environ, start_response):
    """Dispatches on the first path segment; every call is recorded as ``router call <RAW_URI>``
    (so a test can tell the app was not called for a request the server refused)."""
    record("router", "call", environ.get("RAW_URI") or environ.get("PATH_INFO"))
    name = environ.get("PATH_INFO", "/").lstrip("/").split("/", 1)[0]
    app = ROUTES.get(name)
    if app is None:
        record(q1(environ, "id"), "call", "404")
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no app " + name.encode("latin-1", "replace")]
    return app(environ, start_response)


def slow_start(environ, start_response):
    """Sleeps ``?s=`` seconds (bounded at 5) inside the app call, then answers."""
    time.sleep(min(float(q1(environ, "s", "0.5")), 5.0))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]


ROUTES["slow_start"] = slow_start


# ---------------------------------------------------------------------------------------------
# Framework apps (imported lazily: ``tests.apps:bottle_app``, ``tests.apps:flask_app``)
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
