"""Every example in examples/ is started the way its docstring says, in a subprocess on a free
127.0.0.1 port, and answers real HTTP requests: pages, JSON, a form POST and a file upload.

Each example runs twice: as a script (``python examples/x.py HOST:PORT``) and through the command
line (``python -m aiowsgi --bind HOST:PORT ...``); the latter is skipped until ``aiowsgi.cli``
exists.
"""

import hashlib
import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
HAVE_CLI = importlib.util.find_spec("aiowsgi.cli") is not None
START_TIMEOUT = 20.0


# --- helpers: a server subprocess and a small HTTP client -----------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RunningServer:
    """A server subprocess; its stdout and stderr go to one log file read on failure."""

    def __init__(self, argv, cwd, port, log_path, installed):
        self.port = port
        self.log_path = log_path
        env = dict(os.environ)
        if installed:  # stands in for "pip install ." of this checkout
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        self._wait_listening()

    def output(self):
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail("server exited with %s before listening:\n%s"
                            % (self.proc.returncode, self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("server not listening after %ss:\n%s" % (START_TIMEOUT, self.output()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def request(port, method, path, body=None, headers=None):
    """One request on a fresh connection; returns (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def form(**fields):
    return (urllib.parse.urlencode(fields).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})


def multipart(fields, files):
    """Encode a multipart/form-data body: ``files`` maps a field to (filename, bytes)."""
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
    return b"".join(parts), {"Content-Type": "multipart/form-data; boundary=" + boundary}


# --- how each example is started (as its docstring says) ------------------------------------

# example module -> (WSGI attribute, run the command line from examples/ instead of --chdir)
EXAMPLE_APPS = {
    "hello": ("app", False),
    "bottle_app": ("app", False),
    "flask_app": ("app", False),
    "falcon_app": ("app", False),
    "django_app": ("application", True),  # "cd examples && aiowsgi django_app:application"
    "upload_hash": ("app", False),
}


@pytest.fixture(params=["script", "cli"])
def launch(request, tmp_path):
    """A function starting an example by name; every server started is stopped afterwards."""
    mode = request.param
    if mode == "cli" and not HAVE_CLI:
        pytest.skip("the command line (aiowsgi.cli) is not merged yet")
    started = []

    def start(name):
        attr, from_examples = EXAMPLE_APPS[name]
        port = free_port()
        bind = "127.0.0.1:%d" % port
        if mode == "script":
            argv, cwd = [sys.executable, os.path.join("examples", name + ".py"), bind], ROOT
        elif from_examples:
            argv, cwd = [sys.executable, "-m", "aiowsgi", "--bind", bind,
                         "%s:%s" % (name, attr)], EXAMPLES
        else:
            argv, cwd = [sys.executable, "-m", "aiowsgi", "--bind", bind, "--chdir", "examples",
                         "%s:%s" % (name, attr)], ROOT
        # A script finds the checkout's aiowsgi by itself (python examples/x.py in a fresh
        # checkout, as `make serve` does); the command line needs aiowsgi installed.
        server = RunningServer(argv, cwd, port, str(tmp_path / ("%s-%s.log" % (name, mode))),
                               installed=mode == "cli")
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_every_example_is_tested():
    """Each example is started here, or by another test file that names it."""
    names = {f[:-3] for f in os.listdir(EXAMPLES) if f.endswith(".py")}
    assert set(EXAMPLE_APPS) <= names
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    others = ""
    for f in sorted(os.listdir(tests_dir)):
        if f.endswith(".py") and f != os.path.basename(__file__):
            with open(os.path.join(tests_dir, f), encoding="utf-8") as text:
                others += text.read()
    untested = [n for n in sorted(names - set(EXAMPLE_APPS)) if '"%s.py"' % n not in others]
    assert not untested, "examples no test starts: %s" % untested


def test_every_example_says_how_to_run_it():
    for name, (attr, from_examples) in EXAMPLE_APPS.items():
        with open(os.path.join(EXAMPLES, name + ".py"), encoding="utf-8") as f:
            doc = f.read().split('"""')[1]
        assert "python examples/%s.py" % name in doc, name
        if from_examples:
            assert "cd examples && aiowsgi %s:%s" % (name, attr) in doc, name
        else:
            assert "aiowsgi --chdir examples %s:%s" % (name, attr) in doc, name


# --- the examples -------------------------------------------------------------------------

def test_hello_answers(launch):
    server = launch("hello")
    status, headers, body = request(server.port, "GET", "/")
    assert (status, body) == (200, b"Hello, World!")
    assert headers["content-type"] == "text/plain"
    assert server.stop() == 0, server.output()


def upload_payload():
    # Bytes of every value, larger than one socket read, so the upload crosses several reads.
    return bytes(range(256)) * 1200 + b"\r\n--not-a-boundary\r\n"


@pytest.mark.parametrize("name", ["bottle_app", "flask_app", "falcon_app"])
def test_framework_example_routes(launch, name):
    framework = name.split("_")[0]
    server = launch(name)
    port = server.port

    status, headers, body = request(port, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b'enctype="multipart/form-data"' in body

    status, headers, body = request(port, "GET", "/hello/W%C3%B6rld")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert body.decode("utf-8") == "Hello, W\u00f6rld!"

    status, headers, body = request(port, "GET", "/api/info?a=1&b=two")
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"framework": framework, "path": "/api/info",
                                "query": {"a": "1", "b": "two"}}

    status, headers, body = request(port, "POST", "/greet", *form(name="Zo\u00eb"))
    assert status == 200
    assert "Hello, Zo\u00eb!" in body.decode("utf-8")

    payload = upload_payload()
    status, headers, body = request(port, "POST", "/upload",
                                    *multipart({}, {"file": ("data.bin", payload)}))
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {"filename": "data.bin", "size": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}

    status, _, _ = request(port, "GET", "/no/such/page")
    assert status == 404


def test_django_example_one_view(launch):
    server = launch("django_app")
    port = server.port

    status, headers, body = request(port, "GET", "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    assert b"<h1>Django on aiowsgi</h1>" in body

    status, headers, body = request(port, "POST", "/", *form(name="Ann"))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"framework": "django", "name": "Ann"}

    payload = upload_payload()
    status, headers, body = request(
        port, "POST", "/", *multipart({"name": "Zo\u00eb"}, {"file": ("data.bin", payload)}))
    assert status == 200, body
    assert json.loads(body) == {
        "framework": "django", "name": "Zo\u00eb",
        "file": {"filename": "data.bin", "size": len(payload),
                 "sha256": hashlib.sha256(payload).hexdigest()}}

    status, _, _ = request(port, "GET", "/missing")
    assert status == 404


def test_upload_hash_hashes_a_sized_body(launch):
    server = launch("upload_hash")
    payload = os.urandom(3 * 1024 * 1024)
    status, headers, body = request(server.port, "POST", "/", body=payload)
    assert status == 200
    assert json.loads(body) == {"bytes": len(payload),
                                "sha256": hashlib.sha256(payload).hexdigest()}


def test_upload_hash_serves_others_while_a_chunked_upload_trickles_in(launch):
    server = launch("upload_hash")
    pieces = [os.urandom(50000) for _ in range(6)]
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    try:
        slow.sendall(b"POST /slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i, piece in enumerate(pieces):
            slow.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            if i == 2:
                # Halfway through the upload the one worker still answers someone else.
                status, _, body = request(server.port, "POST", "/other", body=b"abc")
                assert status == 200
                assert json.loads(body)["bytes"] == 3
            time.sleep(0.05)
        slow.sendall(b"0\r\n\r\n")
        resp = http.client.HTTPResponse(slow)
        resp.begin()
        assert resp.status == 200
        answer = json.loads(resp.read())
    finally:
        slow.close()
    whole = b"".join(pieces)
    assert answer == {"bytes": len(whole), "sha256": hashlib.sha256(whole).hexdigest()}


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


def test_readme_streaming_example_works_as_printed(tmp_path):
    code = readme_block("This app hashes uploads of any size in constant memory")
    assert code.count('bind="127.0.0.1:8000"') == 1
    port = free_port()
    script = tmp_path / "readme_streaming.py"
    script.write_text(code.replace('bind="127.0.0.1:8000"', 'bind="127.0.0.1:%d"' % port))
    server = RunningServer([sys.executable, str(script)], str(tmp_path), port,
                           str(tmp_path / "readme.log"), installed=True)
    try:
        payload = os.urandom(200000)
        status, _, body = request(port, "PUT", "/", body=payload)
        assert status == 200
        assert json.loads(body) == {"bytes": len(payload),
                                    "sha256": hashlib.sha256(payload).hexdigest()}
    finally:
        server.stop()
