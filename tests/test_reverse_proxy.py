"""Behind a reverse proxy (SPEC section 6): X-Forwarded-For and X-Forwarded-Proto are trusted
only from the peers in ``--forwarded-allow-ips`` (``*``: every peer), never in an underscore
spelling; and a real nginx in front of aiowsgi, over TCP and a unix socket.

Some clients connect from 127.0.0.2 (any 127.0.0.0/8 address is loopback on Linux), so a
forwarded address is told apart from the proxy's own 127.0.0.1.
"""

import os
import shutil
import socket

import pytest

from tests.support.client import get_json
from tests.support.server import ROUTER

FORWARDED = [("X-Forwarded-For", "203.0.113.9, 198.51.100.7"), ("X-Forwarded-Proto", "https")]


def loopback_alias_works():
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
        return True
    except OSError:
        return False


needs_alias = pytest.mark.skipif(not loopback_alias_works(),
                                 reason="cannot bind 127.0.0.2 (no 127.0.0.0/8 loopback)")


def test_forwarded_headers_from_a_trusted_proxy(server):
    # 127.0.0.1 is trusted by default: the address the nearest proxy saw counts
    env = get_json(server.address, "/environ/", headers=FORWARDED)
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 198.51.100.7"


def test_forwarded_headers_with_underscores_are_ignored(server):
    env = get_json(server.address, "/environ/", headers=[("X_Forwarded_For", "203.0.113.7"),
                                                         ("X_Forwarded_Proto", "https")])
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start):
    srv = start.apps(ROUTER, forwarded_allow_ips="10.9.9.9,10.9.9.10")
    env = get_json(srv.address, "/environ/", headers=FORWARDED)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 198.51.100.7"  # still a header


@needs_alias
def test_only_the_listed_peer_is_trusted(start):
    server = start.cli("-b", "127.0.0.1:0", "--forwarded-allow-ips", "127.0.0.2", "app:app")
    trusted = get_json(server.address, headers=FORWARDED, source="127.0.0.2")
    untrusted = get_json(server.address, headers=FORWARDED, source="127.0.0.1")
    assert (trusted["remote_addr"], trusted["scheme"]) == ("198.51.100.7", "https")
    assert (untrusted["remote_addr"], untrusted["scheme"]) == ("127.0.0.1", "http")


def test_star_trusts_every_peer(start):
    server = start.cli("-b", "127.0.0.1:0", "--forwarded-allow-ips", "*", "app:app")
    assert get_json(server.address, headers=FORWARDED)["remote_addr"] == "198.51.100.7"


# -- a real nginx ---------------------------------------------------------------------------

# The listening socket is bound here (port 0) and handed to nginx, which takes inherited
# sockets from $NGINX ("fd;fd;") when they match a listen directive.
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
        listen {listen};
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


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None)


@pytest.fixture
def nginx_in_front(start, tmp_path):
    """``make(*aiowsgi_args)``: aiowsgi (two workers) with those options behind a fresh
    nginx; returns nginx's address."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")

    def make(*args, bind="127.0.0.1:0"):
        upstream = start.cli("-b", bind, "-w", "2", *args, "app:app")
        prefix = tmp_path / "nginx"
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            listen = "127.0.0.1:%d" % sock.getsockname()[1]
            (prefix / "nginx.conf").write_text(NGINX_CONF.format(
                prefix=prefix, listen=listen, upstream=upstream.address,
                user="user root;" if os.geteuid() == 0 else ""))
            start.command([binary, "-p", prefix, "-c", prefix / "nginx.conf", "-e",
                           prefix / "error.log", "-g", "daemon off;"], cwd=prefix,
                          env={"NGINX": "%d;" % sock.fileno()}, pass_fds=[sock.fileno()],
                          addresses=[listen], ready=(prefix / "nginx.pid").exists)
        return listen

    return make


@needs_alias
def test_behind_nginx_the_app_sees_the_client_address_and_scheme(nginx_in_front):
    nginx = nginx_in_front()  # nginx connects from 127.0.0.1: trusted by default
    info = get_json(nginx, "/through/nginx", source="127.0.0.2")
    assert info["path"] == "/through/nginx"
    assert info["remote_addr"] == "127.0.0.2"
    assert info["scheme"] == "https"


@needs_alias
def test_behind_an_untrusted_nginx_the_app_sees_the_proxy(nginx_in_front):
    nginx = nginx_in_front("--forwarded-allow-ips", "10.9.9.9")
    info = get_json(nginx, "/", source="127.0.0.2")
    assert info["remote_addr"] == "127.0.0.1"
    assert info["scheme"] == "http"


@needs_alias
def test_behind_nginx_kept_alive_upstream_connections_serve_many_requests(nginx_in_front):
    nginx = nginx_in_front()
    for i in range(20):
        info = get_json(nginx, "/n%d" % i, source="127.0.0.2")
        assert info["path"] == "/n%d" % i and info["remote_addr"] == "127.0.0.2"


# README's nginx example proxies to a unix socket.  A unix-socket peer has no IP address
# (REMOTE_ADDR is ""); like gunicorn, the core trusts such peers (only local processes allowed
# by the socket file's permissions can connect).
@needs_alias
def test_behind_nginx_on_a_unix_socket(nginx_in_front, tmp_path):
    nginx = nginx_in_front(bind="unix:%s" % (tmp_path / "app.sock"))
    info = get_json(nginx, "/over/unix", source="127.0.0.2")
    assert info["path"] == "/over/unix"
    assert info["remote_addr"] == "127.0.0.2"
    assert info["scheme"] == "https"
