"""``bottle.run(app, server=...)`` serves through aiowsgi, by import path and by the short name.

Each test writes a small bottle script, runs it in a subprocess on a free 127.0.0.1 port (or a
unix socket) and talks to it with real requests.
"""

import http.client
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("bottle")

from aiowsgi.bottle import bind_address  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 20.0

APP = """\
import bottle

app = bottle.Bottle()

@app.get("/")
def index():
    env = bottle.request.environ
    return {"multiprocess": env["wsgi.multiprocess"], "remote": env["REMOTE_ADDR"]}

@app.post("/echo")
def echo():
    return bottle.request.body.read()
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BottleScript:
    """Runs ``APP`` plus ``tail`` as a script; output (bottle's banner is on stderr) to a file."""

    def __init__(self, tmp_path, tail, connect):
        script = tmp_path / "run_bottle.py"
        script.write_text(APP + textwrap.dedent(tail))
        self.log_path = tmp_path / "bottle.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, str(script)], cwd=str(tmp_path),
                                         env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail("bottle script exited with %s:\n%s"
                            % (self.proc.returncode, self.output()))
            try:
                connect().close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("not listening after %ss:\n%s" % (START_TIMEOUT, self.output()))
                time.sleep(0.05)

    def output(self):
        return self.log_path.read_bytes().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


@pytest.fixture
def run_script(tmp_path):
    started = []

    def start(tail, connect):
        script = BottleScript(tmp_path, tail, connect)
        started.append(script)
        return script

    yield start
    for script in started:
        script.stop()


def tcp(port):
    return lambda: socket.create_connection(("127.0.0.1", port), timeout=5)


def get_json(conn, path="/"):
    conn.request("GET", path)
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "application/json"
    return json.loads(resp.read())


def test_server_by_import_path_needs_no_import_and_prints_bottles_banner(run_script):
    port = free_port()
    script = run_script("""
        bottle.run(app, server="aiowsgi.bottle:AioWSGIServer", host="127.0.0.1", port=%d)
        """ % port, tcp(port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        answer = get_json(conn)
        assert answer == {"multiprocess": False, "remote": "127.0.0.1"}
        conn.request("POST", "/echo", body=b"ping")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"ping")
    finally:
        conn.close()
    assert script.stop() == 0
    out = script.output()
    assert "Bottle v" in out and "(using AioWSGIServer(" in out
    assert "Listening on http://127.0.0.1:%d/" % port in out


def test_short_name_after_import_and_quiet_hides_the_banner(run_script):
    port = free_port()
    script = run_script("""
        import aiowsgi.bottle
        assert bottle.server_names["aiowsgi"] is aiowsgi.bottle.AioWSGIServer
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=%d, quiet=True)
        """ % port, tcp(port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert get_json(conn)["remote"] == "127.0.0.1"
    finally:
        conn.close()
    assert script.stop() == 0
    out = script.output()
    assert "Bottle v" not in out
    if importlib.util.find_spec("aiowsgi.log") is not None:  # serve() with log_level
        assert "Listening on" not in out


def test_bottle_options_reach_aiowsgi(run_script):
    # keepalive=1 (an aiowsgi option, unknown to bottle) closes an idle connection after ~1 s.
    port = free_port()
    run_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=%d, keepalive=1)
        """ % port, tcp(port))
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        for _ in range(2):  # the connection is kept alive between two requests ...
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 200
            resp.read()
            time.sleep(0.2)
        started = time.monotonic()  # ... and closed once idle for about a second
        sock.settimeout(8)
        assert sock.recv(1) == b""  # the server closed the idle connection
        assert time.monotonic() - started < 4
    finally:
        sock.close()


def test_static_option_serves_files_beside_the_bottle_app(run_script, tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "site.css").write_bytes(b"h1 { margin: 0 }\n")
    port = free_port()
    run_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=%d,
                   static={"/static": "public"}, static_max_age=120)
        """ % port, tcp(port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/static/site.css")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"h1 { margin: 0 }\n")
        assert resp.getheader("Content-Type") == "text/css; charset=utf-8"
        assert resp.getheader("Cache-Control") == "public, max-age=120"
        assert get_json(conn)["remote"] == "127.0.0.1"  # the rest is still the app's
    finally:
        conn.close()


@pytest.mark.skipif(importlib.util.find_spec("aiowsgi.master") is None,
                    reason="serve(workers=N) (aiowsgi.master) is not merged yet")
def test_workers_option_starts_worker_processes(run_script):
    port = free_port()
    script = run_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=%d, workers=2)
        """ % port, tcp(port))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert get_json(conn)["multiprocess"] is True
    finally:
        conn.close()
    assert script.stop() == 0, script.output()


def test_unix_socket_host(run_script, tmp_path):
    path = str(tmp_path / "bottle.sock")

    def connect():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(path)
        except OSError:
            sock.close()
            raise
        return sock

    run_script("""
        bottle.run(app, server="aiowsgi.bottle:AioWSGIServer", host="unix:%s")
        """ % path, connect)
    sock = connect()
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                     b"Connection: close\r\n\r\npong")
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        assert (resp.status, resp.read()) == (200, b"pong")
    finally:
        sock.close()


def test_bind_address_from_bottle_host_and_port():
    assert bind_address("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert bind_address("", 80) == "0.0.0.0:80"
    assert bind_address("::1", 9000) == "[::1]:9000"
    assert bind_address("[::]", 9000) == "[::]:9000"
    assert bind_address("unix:/run/app.sock", 8080) == "unix:/run/app.sock"


def test_import_aiowsgi_does_not_import_bottle():
    code = "import sys, aiowsgi; sys.exit('bottle' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=ROOT)
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=30).returncode == 0
