"""The Python API (SPEC section 3): ``aiowsgi.Server`` and ``serve()`` with the command line's
options as keyword arguments, an app or an import string, in this process or under a master;
``Config`` and its validation; ``streaming_input``.  Binding, stopping, logging and two servers
in one process have files of their own."""

import signal

import pytest

import aiowsgi
from aiowsgi.config import Config, ConfigError, Options, parse_bind
from tests.support.apps import hello, reporting_app
from tests.support.client import get_json
from tests.support.server import distinct_worker_pids, write_cli_app


def test_factory_option_calls_the_app_factory(start):
    running = start.in_thread(lambda: reporting_app(name="made"), factory=True)
    assert get_json(running.address)["app"] == "made"


def test_invalid_options_are_refused_before_binding():
    with pytest.raises(ConfigError, match="invalid --workers 0"):
        aiowsgi.Server(hello, bind="127.0.0.1:0", workers=0)
    with pytest.raises(ConfigError, match="invalid --keepalive -1"):
        aiowsgi.Server(hello, bind="127.0.0.1:0", keepalive=-1)
    with pytest.raises(TypeError):
        aiowsgi.Server(hello, bind="127.0.0.1:0", worker=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        aiowsgi.Server(42, bind="127.0.0.1:0")  # type: ignore[arg-type]


def test_import_string_app_runs_under_a_master_that_reports_import_errors():
    server = aiowsgi.Server("tests.support.apps:nothing_here", bind="127.0.0.1:0")
    assert server.uses_master
    with pytest.raises(aiowsgi.AppImportError, match="cannot import "
                       "'tests.support.apps:nothing_here': AttributeError: module"):
        server.serve_forever()  # the worker cannot import it: the master gives up


# -- serve() in a process of its own --------------------------------------------------------

SERVE_SCRIPT = """\
import sys
import aiowsgi
from app import app
aiowsgi.serve(app, bind="127.0.0.1:0", workers=int(sys.argv[1]))
print("serve returned", flush=True)
"""


def serve_script(start, tmp_path, workers):
    """``python serve_script.py WORKERS`` in ``tmp_path``, serving the app of app.py."""
    write_cli_app(tmp_path)
    (tmp_path / "serve_script.py").write_text(SERVE_SCRIPT)
    return start.script("serve_script.py", workers, cwd=tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_serves_in_this_process_until_a_signal(start, tmp_path, signum):
    process = serve_script(start, tmp_path, "1")
    assert "(1 worker)" in process.stderr()
    assert get_json(process.address)["pid"] == process.pid  # no master, no fork
    process.signal(signum)
    assert process.wait(20) == 0
    assert process.stdout() == "serve returned\n"


def test_serve_with_workers_forks_them_under_a_master(start, tmp_path):
    process = serve_script(start, tmp_path, "2")
    pids = distinct_worker_pids(process.address, 2)
    assert len(pids) == 2 and process.pid not in pids
    process.signal(signal.SIGTERM)
    assert process.wait(20) == 0
    assert process.stdout() == "serve returned\n"


# -- Config and streaming_input -------------------------------------------------------------

def test_options_typed_dict_names_every_config_option():
    assert set(Options.__annotations__) == {f for f in Config.__dataclass_fields__} - {"bind"}


def test_config_defaults_are_the_documented_ones():
    config = Config()
    assert (config.bind, config.workers, config.backlog, config.keepalive,
            config.header_timeout, config.max_header_size, config.max_body_size,
            config.spool_threshold, config.stream_input, config.max_requests, config.timeout,
            config.graceful_timeout, config.access_log, config.log_level,
            config.forwarded_allow_ips) == (
        None, 1, 2048, 5.0, 10.0, 65536, 1073741824, 1048576, False, 0, 30.0, 30.0, None,
        "info", ("127.0.0.1", "::1"))


@pytest.mark.parametrize("text, kind, detail", [
    ("127.0.0.1:8000", "tcp", ("127.0.0.1", 8000)),
    (":8080", "tcp", ("0.0.0.0", 8080)),
    ("[::1]:0", "tcp", ("::1", 0)),
    ("localhost:1", "tcp", ("localhost", 1)),
    ("unix:/run/app.sock", "unix", "/run/app.sock"),
    ("fd://3", "fd", 3),
])
def test_bind_forms_parse(text, kind, detail):
    address = parse_bind(text)
    assert address.kind == kind
    got = {"tcp": (address.host, address.port), "unix": address.path, "fd": address.fd}[kind]
    assert got == detail


@pytest.mark.parametrize("text", ["", "8000", "host", "::1:80", "[::1]", "[::1]80",
                                  "h:65536", "h:-1", "unix:", "fd://", "fd://x"])
def test_bad_bind_forms_are_refused(text):
    with pytest.raises(ConfigError, match="invalid --bind"):
        parse_bind(text)


def test_forwarded_allow_ips_accepts_a_comma_list():
    assert Config(forwarded_allow_ips="10.0.0.1, 10.0.0.2").forwarded_allow_ips == (
        "10.0.0.1", "10.0.0.2")


def test_streaming_input_marks_the_app_and_returns_it():
    def app(environ, start_response):
        return []

    assert aiowsgi.streaming_input(app) is app
    assert getattr(app, aiowsgi.STREAMING_ATTR) is True
