"""Every example in examples/ is started the way its docstring says and answers real requests:
pages, JSON, a form POST and a file upload; and README's streaming example works as printed.

Each example of ``EXAMPLE_APPS`` runs twice: as a script (``python examples/x.py HOST:PORT``,
finding the checkout's aiowsgi by itself, as ``make serve`` does) and through the command line
(``python -m aiowsgi --bind HOST:PORT ...``, with the checkout on the path as if installed).
"""

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import uuid

import pytest

from tests.support.client import LAST_CHUNK, build_request, chunk, get
from tests.support.server import ROOT

EXAMPLES = os.path.join(ROOT, "examples")

# example module -> (WSGI attribute, run the command line from examples/ instead of --chdir,
# extra command-line options its docstring asks for)
EXAMPLE_APPS = {
    "hello": ("app", False, ()),
    "bottle_app": ("app", False, ()),
    "flask_app": ("app", False, ()),
    "falcon_app": ("app", False, ()),
    "django_app": ("application", True, ()),  # "cd examples && aiowsgi django_app:application"
    "upload_hash": ("app", False, ("--max-body-size", str(1 << 40))),
}


@pytest.fixture(params=["script", "cli"])
def launch(request, start):
    """``launch(name)``: the example ``name`` started as a script or through the command
    line, on 127.0.0.1 port 0."""
    def run(name):
        attr, from_examples, options = EXAMPLE_APPS[name]
        spec = "%s:%s" % (name, attr)
        if request.param == "script":
            return start.script("examples/%s.py" % name, "127.0.0.1:0",
                                env={"PYTHONPATH": None})
        if from_examples:
            return start.cli("--bind", "127.0.0.1:0", *options, spec, cwd=EXAMPLES)
        return start.cli("--bind", "127.0.0.1:0", "--chdir", "examples", *options, spec,
                         cwd=ROOT)

    return run


def test_every_example_is_tested():
    """Each example is in EXAMPLE_APPS, or a test names its path."""
    names = {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert set(EXAMPLE_APPS) <= names
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    text = ""
    for f in sorted(os.listdir(tests_dir)):
        if f.endswith(".py"):
            with open(os.path.join(tests_dir, f), encoding="utf-8") as source:
                text += source.read()
    untested = [n for n in sorted(names - set(EXAMPLE_APPS)) if '"examples/%s.py"' % n not in text]
    assert not untested, "examples no test starts: %s" % untested


def test_every_example_says_how_to_run_it():
    for name, (attr, from_examples, _) in EXAMPLE_APPS.items():
        with open(os.path.join(EXAMPLES, name + ".py"), encoding="utf-8") as f:
            doc = f.read().split('"""')[1]
        assert "python examples/%s.py" % name in doc, name
        if from_examples:
            assert "cd examples && aiowsgi %s:%s" % (name, attr) in doc, name
        else:
            assert "aiowsgi --chdir examples %s:%s" % (name, attr) in doc, name


def form(**fields):
    return {"body": urllib.parse.urlencode(fields).encode(),
            "headers": [("Content-Type", "application/x-www-form-urlencoded")]}


def multipart(fields, files):
    """A multipart/form-data body: ``files`` maps a field to (filename, bytes)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n'
                      % (boundary, name)).encode() + value.encode() + b"\r\n")
    for name, (filename, data) in files.items():
        parts.append(('--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                      "Content-Type: application/octet-stream\r\n\r\n"
                      % (boundary, name, filename)).encode() + data + b"\r\n")
    parts.append(("--%s--\r\n" % boundary).encode())
    return {"body": b"".join(parts),
            "headers": [("Content-Type", "multipart/form-data; boundary=" + boundary)]}


def upload_payload():
    # Bytes of every value, larger than one socket read, so the upload crosses several reads.
    return bytes(range(256)) * 1200 + b"\r\n--not-a-boundary\r\n"


def file_summary(data, name="data.bin"):
    return {"filename": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# -- the examples -----------------------------------------------------------------------------

def test_hello_answers(launch):
    server = launch("hello")
    resp = server.get("/")
    assert (resp.status, resp.body) == (200, b"Hello, World!")
    assert resp.header("Content-Type") == "text/plain"
    assert server.stop() == 0, server.stderr()


@pytest.mark.parametrize("name", ["bottle_app", "flask_app", "falcon_app"])
def test_framework_example_routes(launch, name):
    server = launch(name)
    resp = server.get("/")
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/html")
    assert b'enctype="multipart/form-data"' in resp.body

    resp = server.get("/hello/W%C3%B6rld")
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/plain")
    assert resp.body.decode("utf-8") == "Hello, W\u00f6rld!"

    resp = server.get("/api/info?a=1&b=two")
    assert resp.status == 200 and resp.header("Content-Type").startswith("application/json")
    assert resp.json() == {"framework": name.split("_")[0], "path": "/api/info",
                           "query": {"a": "1", "b": "two"}}

    resp = server.get("/greet", method="POST", **form(name="Zo\u00eb"))
    assert resp.status == 200 and "Hello, Zo\u00eb!" in resp.body.decode("utf-8")

    payload = upload_payload()
    resp = server.get("/upload", method="POST",
                      **multipart({}, {"file": ("data.bin", payload)}))
    assert resp.status == 200, resp.body
    assert resp.header("Content-Type").startswith("application/json")
    assert resp.json() == file_summary(payload)

    assert server.get("/no/such/page").status == 404


def test_django_example_one_view(launch):
    server = launch("django_app")
    resp = server.get("/")
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/html")
    assert b"<h1>Django on aiowsgi</h1>" in resp.body

    resp = server.get("/", method="POST", **form(name="Ann"))
    assert resp.status == 200 and resp.header("Content-Type") == "application/json"
    assert resp.json() == {"framework": "django", "name": "Ann"}

    payload = upload_payload()
    resp = server.get("/", method="POST",
                      **multipart({"name": "Zo\u00eb"}, {"file": ("data.bin", payload)}))
    assert resp.status == 200, resp.body
    assert resp.json() == {"framework": "django", "name": "Zo\u00eb",
                           "file": file_summary(payload)}

    assert server.get("/missing").status == 404


def test_upload_hash_hashes_a_sized_body(launch):
    server = launch("upload_hash")
    payload = os.urandom(3 * 1024 * 1024)
    resp = server.get("/", method="POST", body=payload)
    assert resp.status == 200
    assert resp.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_upload_hash_serves_others_while_a_chunked_upload_trickles_in(launch):
    server = launch("upload_hash")
    pieces = [os.urandom(50000) for _ in range(6)]
    with server.client() as slow:
        slow.send(build_request("POST", "/slow", [("Transfer-Encoding", "chunked")]))
        for i, piece in enumerate(pieces):
            slow.send(chunk(piece))
            if i == 2:  # halfway through the upload the one worker answers someone else
                resp = server.get("/other", method="POST", body=b"abc")
                assert resp.status == 200 and resp.json()["bytes"] == 3
            time.sleep(0.05)
        slow.send(LAST_CHUNK)
        answer = slow.read_response().json()
    whole = b"".join(pieces)
    assert answer == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_upload_hash_with_curl_as_its_docstring_says(start, tmp_path):
    data = os.urandom(3_000_000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    srv = start.script("examples/upload_hash.py", "127.0.0.1:0")
    expected = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):  # Content-Length, then chunked
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "60", "-T", str(upload), *extra,
                              srv.url("/")], capture_output=True, timeout=90, check=True)
        assert json.loads(out.stdout) == expected
    assert b"curl -T" in srv.get("/").body
    assert srv.stop() == 0  # SIGTERM: a clean, graceful stop


WSGIREF_RUNNER = """\
import sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
sys.path.insert(0, sys.argv[1])
from upload_hash import app

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

httpd = make_server("127.0.0.1", 0, app, handler_class=Quiet)
print("Listening on http://127.0.0.1:%d (1 worker)" % httpd.server_port, flush=True)
httpd.serve_forever()
"""


def test_upload_hash_under_a_server_without_streaming_input(start, tmp_path):
    """The example is a plain WSGI app too: wsgiref gives it a complete, blocking input."""
    runner = tmp_path / "wsgiref_runner.py"
    runner.write_text(WSGIREF_RUNNER)
    srv = start.script(runner, EXAMPLES)
    data = os.urandom(500_000)
    resp = srv.get("/", method="POST", body=data, headers=[("Connection", "close")])
    assert resp.status == 200
    assert resp.json() == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def readme_block(after):
    """The literal block that follows the paragraph containing ``after`` in README.rst."""
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    start = next(i for i, line in enumerate(lines) if after in line)
    while not lines[start].rstrip().endswith("::"):
        start += 1
    block = []
    for line in lines[start + 1:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip() + "\n"


def test_readme_streaming_example_works_as_printed(start, tmp_path):
    code = readme_block("This app hashes uploads of any size in constant memory")
    assert code.count('bind="127.0.0.1:8000"') == 1
    script = tmp_path / "readme_streaming.py"
    script.write_text(code.replace('bind="127.0.0.1:8000"', 'bind="127.0.0.1:0"'))
    srv = start.script(script, cwd=tmp_path)
    payload = os.urandom(200000)
    resp = srv.get("/", method="PUT", body=payload)
    assert resp.status == 200
    assert resp.json() == {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


# -- the bottle file host, run the way README.rst (Serving files) says ------------------------

@pytest.fixture
def media(tmp_path):
    pytest.importorskip("bottle")
    media = tmp_path / "media"
    media.mkdir()
    (media / "notes.txt").write_text("some notes\n")
    (media / "a film.mp4").write_bytes(bytes(range(256)) * 4000)
    (media / "big.iso").write_bytes(hashlib.sha256(b"iso").digest() * (5 * 1024 * 1024 // 32))
    (media / ".hidden").write_text("not listed\n")
    return media


@pytest.fixture
def bottle_files(start, media):
    return start.script("examples/bottle_files.py", media, "127.0.0.1:0")


def test_bottle_files_lists_the_files_as_links(bottle_files, media):
    resp = bottle_files.get("/")
    page = resp.body.decode()
    assert resp.status == 200 and resp.header("Content-Type").startswith("text/html")
    assert '<a href="/files/notes.txt">notes.txt</a>' in page
    assert '<a href="/files/a%20film.mp4">a film.mp4</a>' in page
    assert '<a href="/watch/a%20film.mp4">' in page
    assert '<a href="/files/big.iso">big.iso</a> (%d bytes)' % (5 * 1024 * 1024) in page
    assert ".hidden" not in page
    resp = bottle_files.get("/watch/a%20film.mp4")
    assert resp.status == 200 and b"<video controls" in resp.body
    assert b'src="/files/a%20film.mp4"' in resp.body


def test_bottle_files_serves_a_file_whole(bottle_files, media):
    with bottle_files.client() as c:
        for name in ("big.iso", "notes.txt", "a%20film.mp4"):
            c.request("GET", "/files/" + name)
            resp = c.read_response()
            assert resp.status == 200 and resp.header("Accept-Ranges") == "bytes"
            assert resp.body == (media / urllib.parse.unquote(name)).read_bytes()
        c.request("HEAD", "/files/notes.txt")
        resp = c.read_response("HEAD")
        assert resp.status == 200 and resp.header("Content-Length") == "11"
        c.request("GET", "/files/nothing-here")
        assert c.read_response().status == 404
        c.request("GET", "/files/..%2f..%2fetc%2fpasswd")
        assert c.read_response().status in (403, 404)


def test_bottle_files_answers_range_requests(bottle_files, media):
    data = (media / "big.iso").read_bytes()
    with bottle_files.client() as c:
        for spec, first, end in (("1000-1999", 1000, 2000),
                                 ("-500", len(data) - 500, len(data)),
                                 ("%d-" % (len(data) - 10), len(data) - 10, len(data))):
            c.request("GET", "/files/big.iso", [("Range", "bytes=" + spec)])
            resp = c.read_response()
            assert resp.status == 206, (spec, resp)
            assert resp.header("Content-Range") == "bytes %d-%d/%d" % (first, end - 1, len(data))
            assert resp.body == data[first:end]
        c.request("GET", "/files/big.iso", [("Range", "bytes=%d-" % (len(data) + 5))])
        assert c.read_response().status == 416


def test_bottle_files_conditional_get_is_304(bottle_files):
    with bottle_files.client() as c:
        c.request("GET", "/files/notes.txt")
        etag = c.read_response().header("ETag")
        c.request("GET", "/files/notes.txt", [("If-None-Match", etag)])
        resp = c.read_response()
        assert (resp.status, resp.body) == (304, b"")
        c.request("GET", "/")
        assert c.read_response().status == 200


def test_bottle_files_through_the_command_line_factory(start, media):
    """``FILES_DIR=DIR aiowsgi --chdir examples --factory bottle_files:from_env``."""
    srv = start.cli("--chdir", EXAMPLES, "--bind", "127.0.0.1:0", "--factory",
                    "bottle_files:from_env", cwd=ROOT, env={"FILES_DIR": str(media)})
    page = get(srv.address, "/").body
    assert b'<a href="/files/a%20film.mp4">a film.mp4</a>' in page
    resp = get(srv.address, "/files/a%20film.mp4")
    assert (resp.status, resp.header("Content-Type")) == (200, "video/mp4")
    assert resp.body == (media / "a film.mp4").read_bytes()
