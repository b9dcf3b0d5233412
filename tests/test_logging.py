"""Logging (SPEC sections 2 and 3): the access log (one line per request, combined format plus
duration, also for the answers the server gives itself; to a file, stdout, a callable or the
``aiowsgi.access`` logger; reopened after rotation) and the error log (tracebacks, wsgi.errors,
``--log-level``; stderr, a callable or the ``aiowsgi.error`` logger)."""

import io
import logging
import re
import signal
import socket
import sys
import time

import pytest

from aiowsgi.log import ErrorStream, format_access
from tests.support.apps import reporting_app
from tests.support.client import build_request, get
from tests.support.server import ROUTER, run_command
from tests.support.waits import wait_for

ACCESS_LINE = re.compile(
    r'(?P<host>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<duration>\d+\.\d+)$')


def lines_of(path, count, timeout=10.0):
    """The lines of ``path`` once it has at least ``count`` of them (or whatever it has when
    ``timeout`` runs out)."""
    def read():
        return path.read_text().splitlines() if path.exists() else []

    wait_for(lambda: len(read()) >= count, timeout)
    return read()


# -- the core's access-log hook: once per finished request --------------------------------------

HEADER_LIMIT = 2048


@pytest.fixture
def logged(shared_server):
    """The router with ``access_log`` recording each call in the events file."""
    return shared_server(ROUTER, record_access=True, max_header_size=HEADER_LIMIT,
                         max_body_size=1000)


def new_access_lines(srv, before, count, timeout=5):
    assert wait_for(lambda: len(srv.events("access")) >= before + count, timeout), \
        srv.events("access")[before:]
    return srv.events("access")[before:]


def test_access_log_once_per_request_with_status_and_body_size(logged):
    before = len(logged.events("access"))
    with logged.client() as c:
        c.send(build_request("GET", "/hello/") + build_request("GET", "/environ/x?y=1")
               + build_request("GET", "/scripted/?status=299+Odd&part=abc&part=de"))
        sizes = [len(c.read_response().body) for _ in range(3)]
    assert new_access_lines(logged, before, 3) == [
        ["200", str(sizes[0]), "GET", "/hello/"],
        ["200", str(sizes[1]), "GET", "/environ/x?y=1"],
        ["299", "5", "GET", "/scripted/?status=299+Odd&part=abc&part=de"]]


def test_access_log_for_an_app_error(logged):
    before = len(logged.events("access"))
    assert logged.get("/raise_before_headers/").status == 500
    line = new_access_lines(logged, before, 1)[0]
    assert line[0] == "500" and line[2:] == ["GET", "/raise_before_headers/"]


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (build_request("GET", "/environ/", [("X-Big", "b" * (HEADER_LIMIT + 10))]), 431),
    (build_request("POST", "/echo/", [("Content-Length", "100000")]), 413),
], ids=["400", "431", "413"])
def test_access_log_for_requests_the_server_refuses(logged, raw, status):
    before = len(logged.events("access"))
    with logged.client() as c:
        c.send(raw)
        assert c.read_response().status == status
    lines = new_access_lines(logged, before, 1)
    assert len(lines) == 1 and lines[0][0] == str(status), lines


def test_access_log_shows_the_unknown_method_it_refused(logged):
    before = len(logged.events("access"))
    with logged.client() as c:
        c.send(b"FROB /environ/x?y=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 501
    assert new_access_lines(logged, before, 1) == [
        ["501", str(len(resp.body)), "FROB", "/environ/x?y=1"]]


def test_access_log_once_for_a_response_cut_by_an_app_error(logged):
    before = len(logged.events("access"))
    assert not logged.get("/raise_in_generator/").complete
    lines = new_access_lines(logged, before, 1)
    time.sleep(0.3)  # a moment for a duplicate to show
    assert len(logged.events("access")) == before + 1, logged.events("access")[before:]
    assert lines[0][0] == "200" and lines[0][3] == "/raise_in_generator/"


def test_access_line_format_escapes_what_could_forge_a_line():
    environ = {"REMOTE_ADDR": "192.0.2.1", "REQUEST_METHOD": "GET",
               "RAW_URI": '/a"b\n', "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_USER_AGENT": 'evil" 200 1 "-'}
    line = format_access(environ, 404, 0, 0.25)
    assert "\n" not in line
    assert line.startswith('192.0.2.1 - - [')
    assert line.endswith('] "GET /a\\"b\\n HTTP/1.1" 404 - "-" "evil\\" 200 1 \\"-" 0.250000')


# -- the command line --------------------------------------------------------------------------

def test_access_log_file_has_combined_format_plus_duration(start, tmp_path):
    log = tmp_path / "access.log"
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "--access-log", str(log), "app:app")
    get(server.address, "/first?x=1", headers=[("Referer", "http://example.com/"),
                                               ("User-Agent", "tester/1.0")])
    get(server.address, "/fail")
    lines = lines_of(log, 2)
    assert len(lines) == 2, lines
    first, second = (ACCESS_LINE.match(line) for line in lines)
    assert first and second, lines
    assert first["host"] == "127.0.0.1"
    assert first["request"] == "GET /first?x=1 HTTP/1.1"
    assert first["status"] == "200" and int(first["size"]) > 0
    assert first["referer"] == "http://example.com/" and first["agent"] == "tester/1.0"
    assert float(first["duration"]) >= 0
    time.strptime(first["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert second["request"] == "GET /fail HTTP/1.1" and second["status"] == "500"


def test_sigusr1_reopens_the_access_log_after_rotation(start, tmp_path):
    log = tmp_path / "access.log"
    server = start.cli("-b", "127.0.0.1:0", "--access-log", str(log), "app:app")
    get(server.address, "/before")
    assert len(lines_of(log, 1)) == 1
    log.rename(tmp_path / "access.log.1")  # what logrotate does
    server.signal(signal.SIGUSR1)  # the master reopens its copy and tells the worker
    probes = []

    def reopened():
        probes.append(get(server.address, "/probe%d" % len(probes)))
        return lines_of(log, 1, timeout=0.3)

    assert wait_for(reopened, timeout=15)
    for i in range(3):
        get(server.address, "/after%d" % i)
    lines = lines_of(log, 4)
    assert [line.split('"')[1] for line in lines[-3:]] == [
        "GET /after%d HTTP/1.1" % i for i in range(3)], lines
    old = (tmp_path / "access.log.1").read_text()
    assert "/before" in old and "/after" not in old


def test_access_log_dash_writes_to_stdout(start):
    server = start.cli("-b", "127.0.0.1:0", "--access-log", "-", "app:app")
    get(server.address, "/to-stdout")
    assert wait_for(lambda: "/to-stdout" in server.stdout())
    lines = server.stdout().splitlines()
    assert len(lines) == 1 and ACCESS_LINE.match(lines[0])
    assert '"GET /to-stdout HTTP/1.1" 200' in lines[0]


def test_no_access_log_by_default(start):
    server = start.cli("-b", "127.0.0.1:0", "app:app")
    get(server.address, "/quiet")
    assert server.stop() == 0
    assert "/quiet" not in server.stderr() + server.stdout()


def test_app_errors_and_wsgi_errors_go_to_the_error_log(start):
    server = start.cli("-b", "127.0.0.1:0", "app:app")
    assert get(server.address, "/errors").status == 200
    assert get(server.address, "/fail").status == 500
    assert server.stop() == 0
    stderr = server.stderr()
    assert re.search(r"\[\d+\] \[ERROR\] message for the error log", stderr)
    assert "Traceback (most recent call last)" in stderr
    assert "RuntimeError: the app failed on purpose" in stderr


def test_log_level_filters_the_error_log(start):
    with socket.socket() as sock:  # no "Listening" line at this level: bind the port here
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        server = start.cli("-b", "fd://%d" % sock.fileno(), "--log-level", "critical",
                           "app:app", pass_fds=[sock.fileno()], addresses=[address])
    assert get(address, "/errors", timeout=20).status == 200
    assert server.stop() == 0
    assert server.stderr() == ""


# -- the Python API: named loggers, or callables instead --------------------------------------

class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def records():
    """``records(name)``: a handler collecting what the logger ``name`` emits meanwhile."""
    added = []

    def attach(name, level=None):
        handler, logger = Records(), logging.getLogger(name)
        logger.addHandler(handler)
        added.append((logger, handler, logger.level))
        if level is not None:
            logger.setLevel(level)
        return handler

    yield attach
    for logger, handler, level in added:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_app_errors_and_wsgi_errors_reach_the_aiowsgi_error_logger(start, records):
    handler = records("aiowsgi.error")
    running = start.in_thread(reporting_app())
    assert running.get("/errors").status == 200
    assert running.get("/fail").status == 500
    running.stop()
    messages = [record.getMessage() for record in handler.records]
    assert "message for the error log" in messages
    failures = [r for r in handler.records if r.exc_info and r.levelno >= logging.ERROR]
    assert failures and isinstance(failures[0].exc_info[1], RuntimeError)


def test_access_records_also_reach_an_enabled_aiowsgi_access_logger(start, records, tmp_path):
    handler = records("aiowsgi.access", logging.INFO)
    running = start.in_thread(reporting_app(), access_log=str(tmp_path / "access.log"))
    running.get("/logged")
    running.stop()
    assert len(handler.records) == 1
    assert '"GET /logged HTTP/1.1" 200' in handler.records[0].getMessage()
    assert (tmp_path / "access.log").read_text() == handler.records[0].getMessage() + "\n"


def test_log_errors_and_access_log_callables_replace_the_logging(start):
    logged, accessed, errors = [], [], io.StringIO()
    running = start.in_thread(
        reporting_app(), log=lambda level, message, exc: logged.append((level, message, exc)),
        errors=errors, access_log=lambda env, status, size, duration: accessed.append(
            (env["PATH_INFO"], status, size)))
    assert running.get("/errors").status == 200
    assert running.get("/fail").status == 500
    running.stop()
    assert errors.getvalue() == "message for the error log\n"
    assert [(level, type(exc)) for level, _, exc in logged] == [(logging.ERROR, RuntimeError)]
    assert [(path, status) for path, status, _ in accessed] == [("/errors", 200),
                                                                ("/fail", 500)]
    assert accessed[0][2] > 0


def test_reopen_logs_after_rotation(start, tmp_path):
    log = tmp_path / "access.log"
    running = start.in_thread(reporting_app(), access_log=str(log))
    running.get("/before")
    log.rename(tmp_path / "access.log.1")
    running.server.reopen_logs()
    running.get("/after")
    running.stop()
    assert "/before" in (tmp_path / "access.log.1").read_text()
    assert "/after" in log.read_text() and "/before" not in log.read_text()


def test_error_stream_logs_whole_lines(records):
    handler = records("aiowsgi.error")
    stream = ErrorStream()
    stream.write("one ")
    stream.writelines(["line\nsecond", " part\n", "tail"])
    assert [r.getMessage() for r in handler.records] == ["one line", "second part"]
    stream.flush()
    assert [r.getMessage() for r in handler.records][-1] == "tail"



# -- --access-log-format -----------------------------------------------------------------------

def test_access_log_format_with_gunicorns_atoms(start, tmp_path):
    log = tmp_path / "access.log"
    fmt = ('%(h)s|%(l)s|%(u)s|%(t)s|%(r)s|%(m)s|%(U)s|%(q)s|%(H)s|%(s)s|%(B)s|%(b)s|%(f)s|'
           '%(a)s|%(T)s|%(M)s|%(D)s|%(L)s|%(p)s|%({X-Trace}i)s|%({content-type}o)s|'
           '%({remote_port}e)s|%({missing}i)s')
    server = start.cli("-b", "127.0.0.1:0", "--access-log", str(log), "--access-log-format",
                       fmt, "app:app")
    body = get(server.address, "/path?q=1", headers=[
        ("X-Trace", "t-42"), ("Referer", "http://r/"), ("User-Agent", 'ua "quoted"'),
        ("Authorization", "Basic dXNlcjE6c2VjcmV0")]).body  # user1:secret
    (line,) = lines_of(log, 1)
    fields = line.split("|")
    assert fields[:3] == ["127.0.0.1", "-", "user1"]
    time.strptime(fields[3], "[%d/%b/%Y:%H:%M:%S %z]")
    assert fields[4:12] == ["GET /path?q=1 HTTP/1.1", "GET", "/path", "q=1", "HTTP/1.1", "200",
                            str(len(body)), str(len(body))]
    assert fields[12:14] == ["http://r/", 'ua \\"quoted\\"']
    assert fields[14] == "0" and int(fields[15]) >= 0 and int(fields[16]) > 0
    assert re.fullmatch(r"\d+\.\d{6}", fields[17])
    assert re.fullmatch(r"<\d+>", fields[18]) and fields[18] != "<%d>" % server.pid
    assert fields[19:] == ["t-42", "application/json", fields[19 + 2], "-"]
    assert fields[21].isdigit()


def test_access_log_format_with_an_unknown_atom_is_refused(tmp_path):
    result = run_command([sys.executable, "-m", "aiowsgi", "--access-log", "-",
                          "--access-log-format", "%(h)s %(zz)s", "app:app"], cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid --access-log-format '%(h)s %(zz)s': unknown atom %(zz)s" in result.stderr


def test_access_log_format_default_is_the_combined_format_plus_duration():
    from aiowsgi.log import DEFAULT_ACCESS_FORMAT, compile_access_format

    environ = {"REMOTE_ADDR": "192.0.2.1", "REQUEST_METHOD": "GET", "RAW_URI": "/",
               "SERVER_PROTOCOL": "HTTP/1.0"}
    line = compile_access_format(DEFAULT_ACCESS_FORMAT)(environ, 200, 5, 0.001)
    assert ACCESS_LINE.match(line)
    assert format_access(environ, 200, 5, 0.001)[-len(' 200 5 "-" "-" 0.001000'):] == \
        ' 200 5 "-" "-" 0.001000'
