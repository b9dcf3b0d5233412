"""Listening sockets (SPEC sections 2 and 3): every bind form (``HOST:PORT``, a host name,
``[IPV6]:PORT``, ``unix:PATH``, ``fd://N``, systemd socket activation), several at once, one
start-up line each, bound when the Server is made, released on failure and on exit; a bind
failure is one clear line.  Loops sharing a socket (workers after fork) hand connections to
each other."""

import errno
import socket
import sys
import time

import pytest

import aiowsgi
from aiowsgi import _core
from tests.support.apps import hello, reporting_app
from tests.support.client import connection_refused, get_json
from tests.support.server import ROUTER, InThread, run_command, write_cli_app


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


# -- aiowsgi.Server ---------------------------------------------------------------------------

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


def test_several_binds_and_a_unix_socket_removed_on_stop(start, tmp_path):
    path = tmp_path / "api.sock"
    running = start.in_thread(reporting_app(), bind=["127.0.0.1:0", "unix:%s" % path])
    tcp, unix = running.addresses
    assert unix == "unix:%s" % path
    assert get_json(tcp)["path"] == "/" and get_json(unix)["path"] == "/"
    running.stop()
    assert not path.exists()
    assert connection_refused(tcp)


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


@pytest.mark.skipif(not have_ipv6(), reason="no IPv6 loopback on this machine")
def test_ipv6_listener_and_its_environ(start):
    srv = start.apps(ROUTER, bind="[::1]:0")
    assert srv.address.startswith("[::1]:")  # the start-up line shows the brackets
    with srv.client() as c:
        c.request("GET", "/environ/v6", [("Host", "[::1]:%d" % srv.port)])
        env = c.read_response().json()
        local_port = c.sock.getsockname()[1]
    assert env["REMOTE_ADDR"] == "::1"
    assert env["REMOTE_PORT"] == str(local_port)
    assert env["SERVER_PORT"] == str(srv.port)


def test_unix_socket_listener_and_its_environ(start, tmp_path):
    srv = start.apps(ROUTER, bind="unix:%s" % (tmp_path / "aiowsgi.sock"))
    for _ in range(2):
        env = get_json(srv.address, "/environ/unix", headers=[("Connection", "close")])
        assert env["PATH_INFO"] == "/environ/unix"
        for key in ("REMOTE_ADDR", "SERVER_NAME", "SERVER_PORT"):
            assert isinstance(env.get(key, ""), str), key


# -- the command line -------------------------------------------------------------------------

def test_bind_several_addresses_logs_one_line_each(start):
    server = start.cli("-b", "127.0.0.1:0", "-b", "127.0.0.1:0", "-w", "2", "app:app",
                       listeners=2)
    assert len(set(server.addresses)) == 2
    for address in server.addresses:
        assert "Listening on http://%s (2 workers)" % address in server.stderr()
        assert get_json(address)["version"] == "1"


def test_bind_host_name_uses_its_ipv4_address(start):
    server = start.cli("-b", "localhost:0", "app:app")
    assert server.host == "127.0.0.1"
    assert get_json(server.address)["version"] == "1"


def test_bind_unix_socket_and_remove_it_on_exit(start, tmp_path):
    path = tmp_path / "aiowsgi.sock"
    server = start.cli("-b", "unix:%s" % path, "app:app")
    assert server.addresses == ["unix:%s" % path]
    assert "Listening on unix:%s (1 worker)" % path in server.stderr()
    assert get_json("unix:%s" % path)["version"] == "1"
    assert server.stop() == 0
    assert not path.exists()


def test_bind_unix_socket_replaces_a_stale_one_but_not_a_live_one(start, tmp_path):
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # closed without unlinking: a dead server's leftover
    start.cli("-b", "unix:%s" % path, "app:app")
    result = run_command([sys.executable, "-m", "aiowsgi", "-b", "unix:%s" % path, "app:app"],
                         cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "aiowsgi: cannot bind unix:%s: Address already in use" % path]
    assert get_json("unix:%s" % path)["version"] == "1"


def test_bind_failure_prints_one_line_and_exits_1(tmp_path):
    write_cli_app(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        result = run_command([sys.executable, "-m", "aiowsgi", "-b", address, "app:app"],
                             cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "aiowsgi: cannot bind %s: Address already in use" % address]


def test_bind_inherited_file_descriptor(start):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        server = start.cli("-b", "fd://%d" % sock.fileno(), "-w", "2", "app:app",
                           pass_fds=[sock.fileno()])
    assert server.addresses == ["127.0.0.1:%d" % port]
    assert get_json(server.address)["version"] == "1"


# What systemd does before exec: the socket at fd 3, LISTEN_FDS=1 and LISTEN_PID set to the
# pid of the process that will run aiowsgi (this one: exec keeps it).
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
        server = start.cli("-w", "2", "app:app", pass_fds=[sock.fileno()],
                           prefix=[sys.executable, str(wrapper), str(sock.fileno())])
    assert server.addresses == ["127.0.0.1:%d" % port]
    assert get_json(server.address)["version"] == "1"


def test_listen_fds_for_another_process_is_ignored(start):
    server = start.cli("-b", "127.0.0.1:0", "app:app", env={"LISTEN_FDS": "1",
                                                           "LISTEN_PID": "1"})
    assert get_json(server.address)["version"] == "1"


# -- loops sharing one listening socket -------------------------------------------------------

def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def test_a_loop_stopping_as_a_connection_arrives_leaves_it_to_its_sibling():
    """Workers share their sockets after fork; here two ``_core.Server`` loops in threads
    share one.  A connection queued just as one loop stops must be accepted by the other: with
    EPOLLEXCLUSIVE the stopping loop could swallow the only wake-up (it lost 11 of 20)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5)  # the stopping thread runs stop() before the loops see the event
    lost = 0
    try:
        for _ in range(10):
            with socket.socket() as ls:
                ls.bind(("127.0.0.1", 0))
                ls.listen(16)
                port = ls.getsockname()[1]
                a, b = (_core.Server(ok_app, [ls.fileno()]) for _ in range(2))
                loops = [InThread(s.run, s.stop) for s in (a, b)]
                time.sleep(0.1)
                c = socket.socket()
                c.setblocking(False)
                c.connect_ex(("127.0.0.1", port))
                a.stop(True, 5.0)
                c.setblocking(True)
                c.settimeout(2)
                try:
                    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    lost += not c.recv(100).startswith(b"HTTP/1.1 200")
                except socket.timeout:
                    lost += 1
                finally:
                    c.close()
                    for loop in loops:
                        loop.stop(False)
    finally:
        sys.setswitchinterval(old)
    assert lost == 0, "%d connections were never accepted" % lost


def test_stop_before_run_returns_at_once():
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(4)
        server = _core.Server(ok_app, [ls.fileno()])
        server.stop()
        InThread(server.run, lambda graceful: None).stop()
