"""A real HAProxy (Debian's ``haproxy``, 2.6) in front of aiowsgi, started through the server
harness (``Launcher.command``) and stopped with everything else.

Its frontends listen on sockets bound here to port 0 and handed over as ``fd@N`` (so there is
no port to guess), the config is written to the test's folder, errors are logged to its
stderr, and its admin socket answers ``show stat``: :meth:`HAProxy.states` reads what the
health checks concluded.  ``tls_certificate`` makes a throw-away certificate with the
``openssl`` command (Debian's ``ca-certificates`` depends on it) for a TLS frontend.
"""

import csv
import io
import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.support.waits import scaled, wait_for

GLOBAL = """\
global
    maxconn 2000
    log stderr format short local0 notice
    stats socket {admin} mode 600 level admin

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s
"""


def haproxy_binary():
    return shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(p)),
        None)


def tls_certificate(directory):
    """A self-signed certificate and its key for CN=localhost, in one PEM file (HAProxy's
    ``crt``); returns its path."""
    directory = Path(directory)
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=scaled(30))
    pem = directory / "haproxy.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem


class HAProxy:
    """One HAProxy process.  ``config`` is the part after the global and default sections,
    with ``{listen0}``, ``{listen1}``... where ``bind`` takes each of ``listeners`` sockets
    bound here on 127.0.0.1; :attr:`addresses` are their ``HOST:PORT``."""

    def __init__(self, launcher, config, listeners=1, name="haproxy"):
        binary = haproxy_binary()
        assert binary, "haproxy is not installed (Debian: apt-get install haproxy)"
        self.workdir = Path(launcher.workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.admin = self.workdir / "admin.sock"
        socks = []
        for _ in range(listeners):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(512)
            socks.append(sock)
        self.addresses = ["127.0.0.1:%d" % s.getsockname()[1] for s in socks]
        fds = {"listen%d" % i: "fd@%d" % s.fileno() for i, s in enumerate(socks)}
        self.config_path = self.workdir / "haproxy.cfg"
        self.config_path.write_text(GLOBAL.format(admin=self.admin) + config.format(**fds))
        try:
            self.server = launcher.command(
                [binary, "-db", "-f", self.config_path], cwd=self.workdir,
                pass_fds=[s.fileno() for s in socks], addresses=self.addresses,
                ready=self.admin.exists)
        finally:
            for sock in socks:  # HAProxy has them now (or failed to start)
                sock.close()

    @property
    def address(self):
        return self.addresses[0]

    def command(self, line):
        """One command on the admin socket; returns its answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(scaled(5))
            sock.connect(str(self.admin))
            sock.sendall(line.encode() + b"\n")
            out = bytearray()
            while True:
                data = sock.recv(65536)
                if not data:
                    return out.decode()
                out += data

    def states(self, backend):
        """{server name: status} of ``backend`` as HAProxy sees it ("UP", "DOWN", "MAINT",
        "UP 1/2"...)."""
        text = self.command("show stat").lstrip("# ")
        rows = csv.DictReader(io.StringIO(text))
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_states(self, backend, want, timeout=20.0):
        """Wait until every server of ``backend`` named in ``want`` has that status."""
        return wait_for(lambda: all(self.states(backend).get(name) == status
                                    for name, status in want.items()), timeout, interval=0.05)
