"""The command line (SPEC section 2): options, app loading, bind forms, errors, logging."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.launcher import Aiowsgi, child_env, get_json, request, start, write_app

import aiowsgi
from aiowsgi.config import Config, options

assert start  # a fixture, used by name below


def run_cli(*args: str, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aiowsgi`` to completion (for commands that exit by themselves)."""
    return subprocess.run([sys.executable, "-m", "aiowsgi", *args], cwd=str(cwd),
                          env=child_env(), capture_output=True, text=True, timeout=timeout)


# -- --help, --version ---------------------------------------------------------------------

def test_help_lists_every_option_with_its_default(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # undo argparse's line wrapping
    for field in options():
        for flag in field.metadata["flags"]:
            assert flag in text
    for shown in ("[default: 127.0.0.1:8000", "[default: 1]", "[default: 2048]",
                  "[default: 5]", "[default: 10]", "[default: 65536]", "[default: 1073741824]",
                  "[default: 1048576]", "[default: 0]", "[default: 30]", "[default: off]",
                  "[default: info]", "[default: 127.0.0.1,::1]"):
        assert shown in text
    assert "--version" in text and "APP" in text


def test_help_defaults_are_configs_defaults(tmp_path):
    text = " ".join(run_cli("--help", cwd=tmp_path).stdout.split())
    config = Config()
    assert "--workers N worker processes" in text
    assert "[default: %d]" % config.backlog in text
    assert "[default: %g]" % config.graceful_timeout in text


def test_version_prints_the_package_version(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "aiowsgi " + aiowsgi.__version__


def test_console_script_runs_the_same_main(tmp_path):
    script = shutil.which("aiowsgi")
    if script is None:
        pytest.skip("the aiowsgi console script is not installed (pip install .)")
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "aiowsgi " + aiowsgi.__version__


def test_invalid_option_value_is_a_usage_error(tmp_path):
    result = run_cli("--workers", "0", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid --workers 0" in result.stderr
    result = run_cli("-b", "localhost", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid --bind 'localhost'" in result.stderr


# -- app loading --------------------------------------------------------------------------

def test_module_attribute_app_is_served_from_the_current_directory(start, tmp_path):
    server = start("-b", "127.0.0.1:0", "app:app")
    (address,) = server.wait_listening()
    assert get_json(address)["version"] == "1"


def test_module_alone_uses_application_before_app(start, tmp_path):
    (tmp_path / "both.py").write_text(
        "from app import app\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '11')])\n"
        "    return [b'application']\n")
    (tmp_path / "only_app.py").write_text("from app import app\n")
    server = start("-b", "127.0.0.1:0", "both")
    assert request(server.wait_listening()[0])[2] == b"application"
    server = start("-b", "127.0.0.1:0", "only_app")
    assert get_json(server.wait_listening()[0])["version"] == "1"


def test_dotted_attribute_and_package_module(start, tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "web.py").write_text(
        "from app import app as _app\n"
        "class Holder:\n"
        "    wsgi = staticmethod(_app)\n")
    server = start("-b", "127.0.0.1:0", "pkg.web:Holder.wsgi")
    assert get_json(server.wait_listening()[0])["version"] == "1"


def test_factory_is_called_to_make_the_app(start, tmp_path):
    (tmp_path / "factory.py").write_text(
        "def create():\n"
        "    def made(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Length', '4')])\n"
        "        return [b'made']\n"
        "    return made\n")
    server = start("-b", "127.0.0.1:0", "--factory", "factory:create")
    assert request(server.wait_listening()[0])[2] == b"made"


def test_chdir_changes_directory_before_importing(start, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_app(elsewhere, "remote_app", version="chdir")
    server = start("-b", "127.0.0.1:0", "--chdir", str(elsewhere), "remote_app:app")
    assert get_json(server.wait_listening()[0])["version"] == "chdir"


@pytest.mark.parametrize("spec, message", [
    ("x.y:app", "aiowsgi: cannot import 'x.y:app': ModuleNotFoundError: No module named 'x'"),
    ("app:nope", "aiowsgi: cannot import 'app:nope': AttributeError: module 'app' has no "
                 "attribute 'nope'"),
    ("empty", "aiowsgi: cannot import 'empty': module 'empty' has neither 'application' nor "
              "'app'; name the app as 'empty:NAME'"),
    ("broken:app", "aiowsgi: cannot import 'broken:app': ZeroDivisionError: division by zero"),
    ("app:VERSION", "aiowsgi: cannot import 'app:VERSION': 'VERSION': not a WSGI application "
                    "(a str is not callable)"),
    ("not a spec", "aiowsgi: cannot import 'not a spec': expected 'package.module:attribute' "
                   "or 'package.module'"),
])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_import_failure_prints_one_line_and_exits_1(tmp_path, spec, message, workers):
    write_app(tmp_path)
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    result = run_cli("-b", "127.0.0.1:0", "-w", workers, spec, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [message]


def test_bind_failure_prints_one_line_and_exits_1(tmp_path):
    write_app(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        result = run_cli("-b", address, "app:app", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "aiowsgi: cannot bind %s: Address already in use" % address]


# -- bind forms ---------------------------------------------------------------------------

def test_bind_several_addresses_logs_one_line_each(start):
    server = start("-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "-w", "2", "app:app")
    addresses = server.wait_listening()
    assert len(addresses) == 2 and addresses[0] != addresses[1]
    for address in addresses:
        assert "Listening on http://%s (2 workers)" % address in server.stderr
        assert get_json(address)["version"] == "1"


def test_bind_host_name_uses_its_ipv4_address(start):
    server = start("-b", "localhost:0", "app:app")
    (address,) = server.wait_listening()
    assert re.fullmatch(r"127\.0\.0\.1:\d+", address)
    assert get_json(address)["version"] == "1"


def test_bind_ipv6(start):
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    server = start("-b", "[::1]:0", "app:app")
    (address,) = server.wait_listening()
    assert re.fullmatch(r"\[::1\]:\d+", address)
    assert get_json(address)["remote_addr"] == "::1"


def test_bind_unix_socket_and_remove_it_on_exit(start, tmp_path):
    path = tmp_path / "aiowsgi.sock"
    server = start("-b", "unix:%s" % path, "app:app")
    assert server.wait_listening() == ["unix:%s" % path]
    assert "Listening on unix:%s (1 worker)" % path in server.stderr
    assert get_json("unix:%s" % path)["version"] == "1"
    server.signal(15)
    assert server.wait() == 0
    assert not path.exists()


def test_bind_unix_socket_replaces_a_stale_one_but_not_a_live_one(start, tmp_path):
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # closed without unlinking: a dead server's leftover
    server = start("-b", "unix:%s" % path, "app:app")
    server.wait_listening()
    result = run_cli("-b", "unix:%s" % path, "app:app", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "aiowsgi: cannot bind unix:%s: Address already in use" % path]
    assert get_json("unix:%s" % path)["version"] == "1"


def test_bind_inherited_file_descriptor(start):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        sock.set_inheritable(True)
        port = sock.getsockname()[1]
        server = start("-b", "fd://%d" % sock.fileno(), "-w", "2", "app:app",
                       pass_fds=[sock.fileno()])
        assert server.wait_listening() == ["127.0.0.1:%d" % port]
    assert get_json("127.0.0.1:%d" % port)["version"] == "1"


# A wrapper doing what systemd does before exec: the socket at fd 3, LISTEN_FDS=1 and
# LISTEN_PID set to the pid of the process that will run aiowsgi (itself, as exec keeps it).
SYSTEMD_WRAPPER = """\
import os, sys
fd = int(sys.argv[1])
os.dup2(fd, 3)
os.close(fd)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_systemd_socket_activation_without_bind(start, tmp_path):
    wrapper = tmp_path / "systemd_wrapper.py"
    wrapper.write_text(SYSTEMD_WRAPPER)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        fd = sock.fileno()
        server = start("-w", "2", "app:app", pass_fds=[fd],
                       prefix=[sys.executable, str(wrapper), str(fd)])
        assert server.wait_listening() == ["127.0.0.1:%d" % port]
    assert get_json("127.0.0.1:%d" % port)["version"] == "1"


def test_listen_fds_for_another_process_is_ignored(start, tmp_path):
    env = child_env(LISTEN_FDS="1", LISTEN_PID="1")
    server = start("-b", "127.0.0.1:0", "app:app", env=env)
    assert get_json(server.wait_listening()[0])["version"] == "1"


# -- logging ------------------------------------------------------------------------------

ACCESS_LINE = re.compile(
    r'(?P<host>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" (?P<duration>\d+\.\d+)$')


def wait_for_lines(path: Path, count: int, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    lines: list = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            break
        time.sleep(0.05)
    return lines


def test_access_log_file_has_combined_format_plus_duration(start, tmp_path):
    log = tmp_path / "access.log"
    server = start("-b", "127.0.0.1:0", "-w", "2", "--access-log", str(log), "app:app")
    address = server.wait_listening()[0]
    request(address, "/first?x=1", headers={"Referer": "http://example.com/",
                                            "User-Agent": "tester/1.0"})
    request(address, "/fail")
    lines = wait_for_lines(log, 2)
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
    server = start("-b", "127.0.0.1:0", "--access-log", str(log), "app:app")
    address = server.wait_listening()[0]
    request(address, "/before")
    assert len(wait_for_lines(log, 1)) == 1
    log.rename(tmp_path / "access.log.1")  # what logrotate does
    server.signal(signal.SIGUSR1)  # the master reopens its copy and signals the worker
    deadline = time.monotonic() + 15
    probes = 0
    while time.monotonic() < deadline and not wait_for_lines(log, 1, timeout=0.3):
        probes += 1
        request(address, "/probe%d" % probes)
    for i in range(3):
        request(address, "/after%d" % i)
    lines = wait_for_lines(log, 4)
    assert [line.split('"')[1] for line in lines[-3:]] == [
        "GET /after%d HTTP/1.1" % i for i in range(3)], lines
    old = (tmp_path / "access.log.1").read_text()
    assert "/before" in old and "/after" not in old


def test_access_log_dash_writes_to_stdout(tmp_path):
    write_app(tmp_path)
    out = tmp_path / "stdout.log"
    with open(out, "wb") as stdout:
        server = Aiowsgi(["-b", "127.0.0.1:0", "--access-log", "-", "app:app"], cwd=tmp_path,
                         stdout=stdout)
        try:
            request(server.wait_listening()[0], "/to-stdout")
            lines = wait_for_lines(out, 1)
        finally:
            server.close()
    assert len(lines) == 1 and ACCESS_LINE.match(lines[0])
    assert '"GET /to-stdout HTTP/1.1" 200' in lines[0]


def test_no_access_log_by_default(start, tmp_path):
    server = start("-b", "127.0.0.1:0", "app:app")
    request(server.wait_listening()[0], "/quiet")
    server.signal(15)
    assert server.wait() == 0
    assert "/quiet" not in server.stderr


def test_app_errors_and_wsgi_errors_go_to_the_error_log(start):
    server = start("-b", "127.0.0.1:0", "app:app")
    address = server.wait_listening()[0]
    assert request(address, "/errors")[0] == 200
    assert request(address, "/fail")[0] == 500
    server.signal(15)
    assert server.wait() == 0
    stderr = server.stderr
    assert re.search(r"\[\d+\] \[ERROR\] message for the error log", stderr)
    assert "Traceback (most recent call last)" in stderr
    assert "RuntimeError: the app failed on purpose" in stderr


def test_log_level_filters_the_error_log(start):
    with socket.socket() as sock:  # no "Listening" line at this level: bind the port here
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = "127.0.0.1:%d" % sock.getsockname()[1]
        server = start("-b", "fd://%d" % sock.fileno(), "--log-level", "critical", "app:app",
                       pass_fds=[sock.fileno()])
    assert request(address, "/errors", timeout=20)[0] == 200
    server.signal(15)
    assert server.wait() == 0
    assert server.stderr == ""


def test_python_m_aiowsgi_and_cli_main_are_one_entry_point():
    from aiowsgi import __main__ as entry
    from aiowsgi.cli import main

    assert entry.main is main
