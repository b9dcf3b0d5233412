"""Behind a reverse proxy (SPEC section 6): X-Forwarded-For / -Proto are trusted only from the
peers in --forwarded-allow-ips; and a real nginx in front of aiowsgi.

The clients here connect from 127.0.0.2 (any 127.0.0.0/8 address is loopback on Linux), so a
forwarded address is told apart from the proxy's own 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.launcher import get_json, split_address, start

assert start  # a fixture, used by name below

FORWARDED = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7", "X-Forwarded-Proto": "https"}


def loopback_alias_works() -> bool:
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


needs_alias = pytest.mark.skipif(not loopback_alias_works(),
                                 reason="cannot bind 127.0.0.2 (no 127.0.0.0/8 loopback)")


def test_forwarded_headers_are_applied_for_a_trusted_peer(start):
    server = start("-b", "127.0.0.1:0", "app:app")  # default: 127.0.0.1,::1 trusted
    info = get_json(server.wait_listening()[0], headers=FORWARDED)
    # the last entry is the address the nearest (trusted) proxy saw
    assert info["remote_addr"] == "198.51.100.7"
    assert info["scheme"] == "https"


def test_forwarded_headers_are_ignored_from_other_peers(start):
    server = start("-b", "127.0.0.1:0", "--forwarded-allow-ips", "10.0.0.1,10.0.0.2",
                   "app:app")
    info = get_json(server.wait_listening()[0], headers=FORWARDED)
    assert info["remote_addr"] == "127.0.0.1"
    assert info["scheme"] == "http"


@needs_alias
def test_only_the_listed_peer_is_trusted(start):
    server = start("-b", "0.0.0.0:0", "--forwarded-allow-ips", "127.0.0.2", "app:app")
    port = split_address(server.wait_listening()[0])[1]
    address = "127.0.0.1:%d" % port
    trusted = get_json(address, headers=FORWARDED, source="127.0.0.2")
    untrusted = get_json(address, headers=FORWARDED, source="127.0.0.1")
    assert (trusted["remote_addr"], trusted["scheme"]) == ("198.51.100.7", "https")
    assert (untrusted["remote_addr"], untrusted["scheme"]) == ("127.0.0.1", "http")


def test_star_trusts_every_peer(start):
    server = start("-b", "127.0.0.1:0", "--forwarded-allow-ips", "*", "app:app")
    info = get_json(server.wait_listening()[0], headers=FORWARDED)
    assert info["remote_addr"] == "198.51.100.7"


# -- a real nginx ---------------------------------------------------------------------------

NGINX_CONF = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream aiowsgi {{
        server {upstream};
        keepalive 4;  # nginx keeps connections to aiowsgi open between requests
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://aiowsgi;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            # as a TLS-terminating proxy would say
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    """nginx in the foreground with its own prefix, config, pid and logs in ``directory``."""

    def __init__(self, directory: Path, upstream: str) -> None:
        binary = shutil.which("nginx") or next(
            (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)
        if binary is None:
            pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
        self.prefix = directory
        directory.mkdir(exist_ok=True)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (directory / sub).mkdir(exist_ok=True)
        self.conf = directory / "nginx.conf"
        self.proc = None
        for _ in range(5):  # a port picked here could be taken before nginx binds it
            self.port = free_port()
            self.conf.write_text(NGINX_CONF.format(
                prefix=directory, port=self.port, upstream=upstream,
                user="user root;" if os.geteuid() == 0 else ""))
            self.proc = subprocess.Popen(
                [binary, "-p", str(directory), "-c", str(self.conf), "-e",
                 str(directory / "error.log"), "-g", "daemon off;"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return
            self.close()
        raise AssertionError("nginx did not start:\n" + self.error_log())

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def nginx_in_front(start, tmp_path):
    """``make(*aiowsgi_args)``: aiowsgi with those options, behind a fresh nginx."""
    proxies = []

    def make(*args: str, bind: str = "127.0.0.1:0") -> Nginx:
        server = start("-b", bind, "-w", "2", *args, "app:app")
        proxy = Nginx(tmp_path / ("nginx%d" % len(proxies)), server.wait_listening()[0])
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.close()


@needs_alias
def test_behind_nginx_the_app_sees_the_client_address_and_scheme(nginx_in_front, tmp_path):
    nginx = nginx_in_front()  # nginx connects from 127.0.0.1: trusted by default
    info = get_json("127.0.0.1:%d" % nginx.port, "/through/nginx", source="127.0.0.2")
    assert info["path"] == "/through/nginx"
    assert info["remote_addr"] == "127.0.0.2"
    assert info["scheme"] == "https"


@needs_alias
def test_behind_an_untrusted_nginx_the_app_sees_the_proxy(nginx_in_front, tmp_path):
    nginx = nginx_in_front("--forwarded-allow-ips", "10.9.9.9")
    info = get_json("127.0.0.1:%d" % nginx.port, "/", source="127.0.0.2")
    assert info["remote_addr"] == "127.0.0.1"
    assert info["scheme"] == "http"


@needs_alias
def test_behind_nginx_kept_alive_upstream_connections_serve_many_requests(nginx_in_front, tmp_path):
    nginx = nginx_in_front()
    for i in range(20):
        info = get_json("127.0.0.1:%d" % nginx.port, "/n%d" % i, source="127.0.0.2")
        assert info["path"] == "/n%d" % i and info["remote_addr"] == "127.0.0.2"


# README's nginx example proxies to a unix socket.  A unix-socket peer has no IP address
# (REMOTE_ADDR is ""); like gunicorn, the core trusts such peers (only local processes allowed
# by the socket file's permissions can connect).
@needs_alias
def test_behind_nginx_on_a_unix_socket(nginx_in_front, tmp_path):
    nginx = nginx_in_front(bind="unix:%s" % (tmp_path / "app.sock"))
    info = get_json("127.0.0.1:%d" % nginx.port, "/over/unix", source="127.0.0.2")
    assert info["path"] == "/over/unix"
    assert info["remote_addr"] == "127.0.0.2"
    assert info["scheme"] == "https"
