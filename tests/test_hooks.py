"""Server hooks from a config file (SPEC section 9), through the real command: each is called
where gunicorn calls it, with its arguments; an exception in a hook is logged and the server
goes on, except in on_starting, which stops the start with exit status 1."""

import os
import signal
import sys
import textwrap

from tests.support.client import get, get_json
from tests.support.server import run_command, write_cli_app
from tests.support.waits import wait_for

RECORDING_HOOKS = '''
import os

def _record(*words):
    with open(os.path.join(os.path.dirname(__file__), "hooks.log"), "a") as f:
        f.write(" ".join(str(w) for w in words) + "\\n")

def on_starting(server):
    _record("on_starting", os.getpid(), len(server.sockets))

def when_ready(server):
    _record("when_ready", os.getpid(), server.addresses[0])

def on_reload(server):
    _record("on_reload", os.getpid())

def post_fork(server, worker):
    _record("post_fork", os.getpid(), worker.pid, server.addresses[0])

def post_worker_init(worker):
    _record("post_worker_init", os.getpid(), callable(worker.app))

def worker_exit(server, worker):
    _record("worker_exit", os.getpid(), worker.pid)

def on_exit(server):
    _record("on_exit", os.getpid())

def pre_request(worker, environ):
    _record("pre_request", worker.pid, environ["PATH_INFO"])
    environ["hooks.seen"] = "yes"

def post_request(worker, environ, status):
    _record("post_request", worker.pid, environ["PATH_INFO"], status, environ["hooks.seen"])
'''


def recorded(tmp_path):
    path = tmp_path / "hooks.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def names(rows):
    return [row[0] for row in rows]


def test_every_hook_is_called_where_gunicorn_calls_it(start, tmp_path):
    write_cli_app(tmp_path)
    (tmp_path / "conf.py").write_text(RECORDING_HOOKS)
    server = start.cli("-c", "conf.py", "-b", "127.0.0.1:0", "-w", "2", "app:app")
    master = str(server.pid)
    workers = {str(pid) for pid in server.children()}
    assert wait_for(lambda: names(recorded(tmp_path)).count("post_worker_init") == 2)
    rows = recorded(tmp_path)
    assert rows[0] == ["on_starting", master, "0"]  # before the sockets are bound
    assert rows[1] == ["when_ready", master, server.address]
    forks = [row for row in rows if row[0] == "post_fork"]
    assert {row[1] for row in forks} == workers and all(row[1] == row[2] for row in forks)
    assert all(row[3] == server.address for row in forks)
    assert sorted(row[1:] for row in rows if row[0] == "post_worker_init") == sorted(
        [pid, "True"] for pid in workers)
    answered = get_json(server.address, "/some/path")
    pid = str(answered["pid"])
    assert wait_for(lambda: "post_request" in names(recorded(tmp_path)))
    rows = recorded(tmp_path)
    assert ["pre_request", pid, "/some/path"] in rows
    assert ["post_request", pid, "/some/path", "200", "yes"] in rows
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: "on_reload" in names(recorded(tmp_path)))
    assert ["on_reload", master] in recorded(tmp_path)
    assert wait_for(lambda: names(recorded(tmp_path)).count("worker_exit") == 2, timeout=20)
    assert {row[1] for row in recorded(tmp_path) if row[0] == "worker_exit"} == workers
    assert server.stop() == 0
    assert recorded(tmp_path)[-1] == ["on_exit", master]


def test_post_request_is_not_called_for_the_servers_own_answers(start, tmp_path):
    write_cli_app(tmp_path)
    (tmp_path / "conf.py").write_text(RECORDING_HOOKS)
    server = start.cli("-c", "conf.py", "-b", "127.0.0.1:0", "app:app")
    with server.client() as c:
        c.send(b"GARBAGE\r\n\r\n")
        assert c.read_response().status == 400
    assert get(server.address, "/after").status == 200
    assert wait_for(lambda: "post_request" in names(recorded(tmp_path)))
    requests = [row[2] for row in recorded(tmp_path) if row[0] == "post_request"]
    assert requests == ["/after"]


def test_a_failing_hook_is_logged_and_the_server_goes_on(start, tmp_path):
    write_cli_app(tmp_path, version="still serving")
    (tmp_path / "conf.py").write_text(textwrap.dedent('''
        def when_ready(server):
            raise RuntimeError("when_ready failed on purpose")

        def post_fork(server, worker):
            raise RuntimeError("post_fork failed on purpose")

        def pre_request(worker, environ):
            raise RuntimeError("pre_request failed on purpose")

        def post_request(worker, environ, status):
            raise RuntimeError("post_request failed on purpose")
    '''))
    server = start.cli("-c", "conf.py", "-b", "127.0.0.1:0", "app:app")
    assert get_json(server.address)["version"] == "still serving"
    assert server.wait_stderr("post_request failed on purpose")
    stderr = server.stderr()
    for name in ("when_ready", "post_fork", "pre_request", "post_request"):
        assert "Exception in the %s hook" % name in stderr
        assert "RuntimeError: %s failed on purpose" % name in stderr


def test_a_failing_on_starting_stops_the_start_with_status_1(tmp_path):
    write_cli_app(tmp_path)
    (tmp_path / "conf.py").write_text(
        "def on_starting(server):\n    raise RuntimeError('not today')\n")
    result = run_command([sys.executable, "-m", "aiowsgi", "-c", "conf.py", "-b",
                          "127.0.0.1:0", "app:app"], cwd=tmp_path)
    assert result.returncode == 1
    assert "Exception in the on_starting hook" in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "aiowsgi: the on_starting hook raised RuntimeError: not today")


def test_hooks_as_keyword_arguments_of_the_python_api(start, tmp_path):
    """aiowsgi.serve(app, pre_request=...) in one process, without a master."""
    script = tmp_path / "serve_with_hooks.py"
    script.write_text(textwrap.dedent('''
        import os, sys
        import aiowsgi
        from tests.support.apps import reporting_app

        def pre_request(worker, environ):
            print("pre_request", worker.pid == os.getpid(), environ["PATH_INFO"], flush=True)

        def post_request(worker, environ, status):
            print("post_request", status, flush=True)

        aiowsgi.serve(reporting_app("api"), bind="127.0.0.1:0", pre_request=pre_request,
                      post_request=post_request)
    '''))
    server = start.script(str(script))
    assert get_json(server.address, "/api")["version"] == "api"
    assert wait_for(lambda: "post_request 200" in server.stdout())
    assert "pre_request True /api" in server.stdout()
    assert os.getpid() != server.pid
