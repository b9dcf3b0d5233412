"""``bottle.run(app, server=...)`` serves through aiowsgi (SPEC section 3), by import path and,
after ``import aiowsgi.bottle``, by the short name; bottle's options reach aiowsgi.

Each test writes a small bottle script and runs it on 127.0.0.1 port 0 (or a unix socket)."""

import importlib.util
import socket
import sys
import textwrap
import time

import pytest

from tests.support.client import get, get_json
from tests.support.server import run_command

pytest.importorskip("bottle")

from aiowsgi.bottle import bind_address  # noqa: E402

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


@pytest.fixture
def bottle_script(start, tmp_path):
    """``bottle_script(tail, **kwargs)``: APP plus ``tail`` as a script, started."""
    def run(tail, **kwargs):
        script = tmp_path / "run_bottle.py"
        script.write_text(APP + textwrap.dedent(tail))
        return start.script(script, cwd=tmp_path, **kwargs)

    return run


def test_server_by_import_path_needs_no_import_and_prints_bottles_banner(bottle_script):
    srv = bottle_script("""
        bottle.run(app, server="aiowsgi.bottle:AioWSGIServer", host="127.0.0.1", port=0)
        """)
    with srv.client() as c:
        c.request("GET", "/")
        resp = c.read_response()
        assert resp.header("Content-Type") == "application/json"
        assert resp.json() == {"multiprocess": False, "remote": "127.0.0.1"}
        c.request("POST", "/echo", body=b"ping")
        resp = c.read_response()
        assert (resp.status, resp.body) == (200, b"ping")
    assert srv.stop() == 0
    out = srv.stdout() + srv.stderr()
    assert "Bottle v" in out and "(using AioWSGIServer(" in out
    assert "Listening on http://127.0.0.1:0/" in out  # bottle's banner, before aiowsgi binds


def test_short_name_after_import_and_quiet_hides_the_banner(bottle_script):
    # quiet: no start-up line to learn the port from, so the socket is bound here
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        srv = bottle_script("""
            import aiowsgi.bottle
            assert bottle.server_names["aiowsgi"] is aiowsgi.bottle.AioWSGIServer
            bottle.run(app, server="aiowsgi", host="127.0.0.1", port=0, quiet=True,
                       bind="fd://%d")
            """ % sock.fileno(), pass_fds=[sock.fileno()], addresses=[address])
    assert get_json(address, timeout=20)["remote"] == "127.0.0.1"
    assert srv.stop() == 0
    out = srv.stdout() + srv.stderr()
    assert "Bottle v" not in out
    if importlib.util.find_spec("aiowsgi.log") is not None:  # serve() with log_level
        assert "Listening on" not in out


def test_bottle_options_reach_aiowsgi(bottle_script):
    # keepalive=1 (an aiowsgi option, unknown to bottle) closes an idle connection after ~1 s.
    srv = bottle_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=0, keepalive=1)
        """)
    with srv.client() as c:
        for _ in range(2):  # the connection is kept alive between two requests ...
            c.request("GET", "/")
            assert c.read_response().status == 200
            time.sleep(0.2)
        assert c.peer_closed(4)  # ... and closed once idle for about a second


def test_static_option_serves_files_beside_the_bottle_app(bottle_script, tmp_path):
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "site.css").write_bytes(b"h1 { margin: 0 }\n")
    srv = bottle_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=0,
                   static={"/static": "public"}, static_max_age=120)
        """)
    resp = get(srv.address, "/static/site.css")
    assert (resp.status, resp.body) == (200, b"h1 { margin: 0 }\n")
    assert resp.header("Content-Type") == "text/css; charset=utf-8"
    assert resp.header("Cache-Control") == "public, max-age=120"
    assert get_json(srv.address)["remote"] == "127.0.0.1"  # the rest is still the app's


def test_workers_option_starts_worker_processes(bottle_script):
    srv = bottle_script("""
        import aiowsgi.bottle
        bottle.run(app, server="aiowsgi", host="127.0.0.1", port=0, workers=2)
        """)
    assert get_json(srv.address)["multiprocess"] is True
    assert srv.stop() == 0, srv.stderr()


def test_unix_socket_host(bottle_script, tmp_path):
    path = tmp_path / "bottle.sock"
    srv = bottle_script("""
        bottle.run(app, server="aiowsgi.bottle:AioWSGIServer", host="unix:%s")
        """ % path)
    assert srv.address == "unix:%s" % path
    resp = get(srv.address, "/echo", method="POST", body=b"pong",
               headers=[("Connection", "close")])
    assert (resp.status, resp.body) == (200, b"pong")


def test_bind_address_from_bottle_host_and_port():
    assert bind_address("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert bind_address("", 80) == "0.0.0.0:80"
    assert bind_address("::1", 9000) == "[::1]:9000"
    assert bind_address("[::]", 9000) == "[::]:9000"
    assert bind_address("unix:/run/app.sock", 8080) == "unix:/run/app.sock"


def test_import_aiowsgi_does_not_import_bottle():
    code = "import sys, aiowsgi; sys.exit('bottle' in sys.modules)"
    assert run_command([sys.executable, "-c", code]).returncode == 0
