"""The Python API (SPEC section 3): Server, serve, streaming_input, Config."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Dict, List

import pytest

import aiowsgi
from aiowsgi.config import Config, ConfigError, Options, parse_bind
from aiowsgi.log import ErrorStream, format_access
from tests.launcher import Aiowsgi, distinct_worker_pids, get_json, request, write_app


def hello(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "1"))
    elif path == "/errors":
        environ["wsgi.errors"].write("note from the app\n")
    elif path == "/fail":
        raise ValueError("failing on purpose")
    body = json.dumps({"path": path, "pid": os.getpid(), "app": "hello",
                       "remote_addr": environ["REMOTE_ADDR"],
                       "scheme": environ["wsgi.url_scheme"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def other(environ: Dict[str, Any], start_response: Any) -> List[bytes]:
    body = json.dumps({"app": "other"}).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


class Running:
    """A Server serving in a background thread of this process."""

    def __init__(self, server: aiowsgi.Server) -> None:
        self.server = server
        self.error: List[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as exc:  # reported by stop()
            self.error.append(exc)

    def stop(self, graceful: bool = True) -> None:
        self.server.stop(graceful)
        self.thread.join(20)
        assert not self.thread.is_alive()
        assert self.error == []


@pytest.fixture
def serving():
    started: List[Running] = []

    def run(app: Any = hello, bind: Any = "127.0.0.1:0", **options: Any) -> Running:
        running = Running(aiowsgi.Server(app, bind, **options))
        started.append(running)
        return running

    yield run
    for running in started:
        if running.thread.is_alive():
            running.stop(graceful=False)


def refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return False
    except ConnectionRefusedError:
        return True


# -- Server ---------------------------------------------------------------------------------

def test_server_binds_at_construction_and_resolves_port_0():
    server = aiowsgi.Server(hello, bind="127.0.0.1:0")
    try:
        (address,) = server.addresses
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        assert server.sockets[0].getsockname() == ("127.0.0.1", int(port))
        assert not server.uses_master
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            pass  # listening already, before serve_forever
    finally:
        server.stop()
        server.serve_forever()  # returns at once: stopped before it started


def test_serve_forever_until_stop_from_another_thread(serving):
    running = serving()
    address = running.server.addresses[0]
    assert get_json(address, "/x")["path"] == "/x"
    running.stop()
    assert refused(address)


def test_graceful_stop_lets_the_in_flight_request_finish(serving):
    running = serving()
    address = running.server.addresses[0]
    result: Dict[str, Any] = {}
    client = threading.Thread(target=lambda: result.update(get_json(address, "/sleep?1")))
    client.start()
    time.sleep(0.3)
    running.stop(graceful=True)
    client.join(20)
    assert result.get("path") == "/sleep"


def start_upload(address: str) -> socket.socket:
    """A request whose body is still arriving: 5 of its 10 bytes sent."""
    host, _, port = address.rpartition(":")
    client = socket.create_connection((host, int(port)), timeout=10)
    client.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(0.3)
    return client


def test_graceful_stop_waits_for_a_request_body_in_progress(serving):
    running = serving()
    client = start_upload(running.server.addresses[0])
    with client:
        running.server.stop(graceful=True)
        time.sleep(0.3)
        client.sendall(b"67890")
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")
    running.thread.join(20)
    assert not running.thread.is_alive()


def test_immediate_stop_closes_a_request_still_in_progress(serving):
    running = serving()
    client = start_upload(running.server.addresses[0])
    with client:
        running.stop(graceful=False)
        try:
            assert client.recv(4096) == b""
        except ConnectionResetError:
            pass


def test_two_servers_in_one_process_do_not_interfere(serving, tmp_path):
    first = serving(hello, access_log=str(tmp_path / "first.log"))
    second = serving(other, access_log=str(tmp_path / "second.log"))
    a, b = first.server.addresses[0], second.server.addresses[0]
    assert get_json(a)["app"] == "hello" and get_json(b)["app"] == "other"
    first.stop()
    assert refused(a)
    assert get_json(b)["app"] == "other"  # still serving
    second.stop()
    first_log = (tmp_path / "first.log").read_text().splitlines()
    second_log = (tmp_path / "second.log").read_text().splitlines()
    assert len(first_log) == 1 and len(second_log) == 2


def test_several_binds_and_a_unix_socket(serving, tmp_path):
    path = tmp_path / "api.sock"
    running = serving(bind=["127.0.0.1:0", "unix:%s" % path])
    tcp, unix = running.server.addresses
    assert unix == "unix:%s" % path
    assert get_json(tcp)["path"] == "/" and get_json(unix)["path"] == "/"
    running.stop()
    assert not path.exists()


def test_factory_option_calls_the_app_factory(serving):
    running = serving(lambda: other, factory=True)
    assert get_json(running.server.addresses[0])["app"] == "other"


def test_bind_failure_raises_bind_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        with pytest.raises(aiowsgi.BindError) as info:
            aiowsgi.Server(hello, bind=address)
    assert info.value.errno == errno.EADDRINUSE
    assert str(info.value) == "cannot bind %s: Address already in use" % address


def test_a_failed_construction_releases_the_address():
    server = aiowsgi.Server(hello, bind="127.0.0.1:0")
    address = server.addresses[0]
    server.stop()
    server.serve_forever()
    with pytest.raises(TypeError, match="not a WSGI application"):
        aiowsgi.Server(lambda: 42, bind=address, factory=True)
    again = aiowsgi.Server(hello, bind=address)  # the address is free again
    again.stop()
    again.serve_forever()


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
    server = aiowsgi.Server("tests.launcher:nothing_here", bind="127.0.0.1:0")
    assert server.uses_master
    with pytest.raises(aiowsgi.AppImportError, match="cannot import 'tests.launcher:nothing_here'"
                                                     ": AttributeError: module"):
        server.serve_forever()  # the worker cannot import it: the master gives up


# -- serve() in a process of its own --------------------------------------------------------

SERVE_SCRIPT = """\
import sys
import aiowsgi
from app import app
aiowsgi.serve(app, bind="127.0.0.1:0", workers=int(sys.argv[1]))
print("serve returned", flush=True)
"""


def run_script(tmp_path, workers: str) -> Aiowsgi:
    """``python serve_script.py WORKERS`` in ``tmp_path``; its stdout goes to stdout.log."""
    write_app(tmp_path)
    (tmp_path / "serve_script.py").write_text(SERVE_SCRIPT)
    with open(tmp_path / "stdout.log", "wb") as stdout:
        return Aiowsgi([workers], cwd=tmp_path, stdout=stdout,
                       command=[sys.executable, "serve_script.py"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_serves_in_this_process_until_a_signal(tmp_path, signum):
    process = run_script(tmp_path, "1")
    try:
        address = process.wait_listening()[0]
        assert "(1 worker)" in process.stderr
        info = get_json(address)
        assert info["pid"] == process.pid  # no master, no fork
        process.signal(signum)
        assert process.wait(20) == 0
        assert (tmp_path / "stdout.log").read_text() == "serve returned\n"
    finally:
        process.close()


def test_serve_with_workers_forks_them_under_a_master(tmp_path):
    process = run_script(tmp_path, "2")
    try:
        address = process.wait_listening()[0]
        pids = distinct_worker_pids(address, 2)
        assert len(pids) == 2 and process.pid not in pids
        process.signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert (tmp_path / "stdout.log").read_text() == "serve returned\n"
    finally:
        process.close()


# -- logging through the named loggers ------------------------------------------------------

class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_app_errors_and_wsgi_errors_reach_the_aiowsgi_error_logger(serving):
    handler = Records()
    logger = logging.getLogger("aiowsgi.error")
    logger.addHandler(handler)
    try:
        running = serving()
        address = running.server.addresses[0]
        assert request(address, "/errors")[0] == 200
        assert request(address, "/fail")[0] == 500
        running.stop()
    finally:
        logger.removeHandler(handler)
    messages = [record.getMessage() for record in handler.records]
    assert "note from the app" in messages
    failures = [r for r in handler.records if r.exc_info and r.levelno >= logging.ERROR]
    assert failures and isinstance(failures[0].exc_info[1], ValueError)


def test_access_records_also_reach_an_enabled_aiowsgi_access_logger(serving, tmp_path):
    handler = Records()
    logger = logging.getLogger("aiowsgi.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        running = serving(access_log=str(tmp_path / "access.log"))
        request(running.server.addresses[0], "/logged")
        running.stop()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert len(handler.records) == 1
    assert '"GET /logged HTTP/1.1" 200' in handler.records[0].getMessage()
    assert (tmp_path / "access.log").read_text() == handler.records[0].getMessage() + "\n"


def test_log_errors_and_access_log_callables_replace_the_logging(serving):
    logged: List[Any] = []
    accessed: List[Any] = []
    errors = io.StringIO()
    running = serving(log=lambda level, message, exc: logged.append((level, message, exc)),
                      errors=errors,
                      access_log=lambda env, status, size, duration: accessed.append(
                          (env["PATH_INFO"], status, size)))
    address = running.server.addresses[0]
    assert request(address, "/errors")[0] == 200
    assert request(address, "/fail")[0] == 500
    running.stop()
    assert errors.getvalue() == "note from the app\n"
    assert [(level, type(exc)) for level, _, exc in logged] == [(logging.ERROR, ValueError)]
    assert [(path, status) for path, status, _ in accessed] == [("/errors", 200),
                                                                ("/fail", 500)]
    assert accessed[0][2] > 0


def test_reopen_logs_after_rotation(serving, tmp_path):
    log = tmp_path / "access.log"
    running = serving(access_log=str(log))
    address = running.server.addresses[0]
    request(address, "/before")
    log.rename(tmp_path / "access.log.1")
    running.server.reopen_logs()
    request(address, "/after")
    running.stop()
    assert "/before" in (tmp_path / "access.log.1").read_text()
    assert "/after" in log.read_text() and "/before" not in log.read_text()


def test_access_line_format_escapes_what_could_forge_a_line():
    environ = {"REMOTE_ADDR": "192.0.2.1", "REQUEST_METHOD": "GET",
               "RAW_URI": '/a"b\n', "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_USER_AGENT": 'evil" 200 1 "-'}
    line = format_access(environ, 404, 0, 0.25)
    assert "\n" not in line
    assert line.startswith('192.0.2.1 - - [')
    assert line.endswith('] "GET /a\\"b\\n HTTP/1.1" 404 - "-" "evil\\" 200 1 \\"-" 0.250000')


def test_error_stream_logs_whole_lines():
    handler = Records()
    logger = logging.getLogger("aiowsgi.error")
    logger.addHandler(handler)
    try:
        stream = ErrorStream()
        stream.write("one ")
        stream.writelines(["line\nsecond", " part\n", "tail"])
        assert [r.getMessage() for r in handler.records] == ["one line", "second part"]
        stream.flush()
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in handler.records][-1] == "tail"


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
    def app(environ: Any, start_response: Any) -> List[bytes]:
        return []

    assert aiowsgi.streaming_input(app) is app
    assert getattr(app, aiowsgi.STREAMING_ATTR) is True
