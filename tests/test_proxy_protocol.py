"""The PROXY protocol (SPEC section 2, ``--proxy-protocol v1|v2|auto|off``): the header a load
balancer sends before the first request names the client, whose address and port become
REMOTE_ADDR and REMOTE_PORT (v2's SSL TLV: the https scheme); it is accepted only from
trusted peers, may arrive in pieces and with requests right behind it; LOCAL, UNKNOWN and
unspecified families keep the connection's own peer; a malformed or missing header closes the
connection and is logged.  Then a real HAProxy sends it, v1 and v2 (over TLS: the SSL TLV),
its health checks included.
"""

import http.client
import json
import math
import re
import socket
import ssl
import struct
import sys
import time

import pytest

from tests.support.client import build_request
from tests.support.haproxy import HAProxy, tls_certificate
from tests.support.server import ROUTER, run_command
from tests.support.waits import wait_for

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
SOURCE = "127.0.0.2"  # the client behind HAProxy (HAProxy itself connects from 127.0.0.1)
CLIENT = ("203.0.113.7", 40001)


def v1(src=CLIENT[0], sport=CLIENT[1], dst="192.0.2.1", dport=443, proto="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def ssl_tlv(client=0x01, verify=0):
    """PP2_TYPE_SSL: the client's flags (0x01: it came over TLS), verify, a version sub-TLV."""
    return tlv(0x20, bytes([client]) + struct.pack("!I", verify) + tlv(0x21, b"TLSv1.3"))


def v2(command=1, family=1, transport=1, src=CLIENT[0], sport=CLIENT[1], tlvs=b"",
       addresses=None):
    """A v2 header; the address block is made from src/sport unless ``addresses`` is given."""
    if addresses is None:
        if family == 1:
            addresses = (socket.inet_aton(src) + socket.inet_aton("192.0.2.1")
                         + struct.pack("!HH", sport, 443))
        elif family == 2:
            addresses = (socket.inet_pton(socket.AF_INET6, src)
                         + socket.inet_pton(socket.AF_INET6, "2001:db8::1")
                         + struct.pack("!HH", sport, 443))
        elif family == 3:
            addresses = b"/run/client.sock".ljust(108, b"\0") + b"/run/lb.sock".ljust(108, b"\0")
        else:
            addresses = b""
    body = addresses + tlvs
    return (V2_SIGNATURE + bytes([0x20 | command, family << 4 | transport])
            + struct.pack("!H", len(body)) + body)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def with_crc(header, wrong=False):
    """``header`` (v2) with a PP2_TYPE_CRC32C TLV appended, its value right or wrong."""
    grown = header[:14] + struct.pack("!H", len(header) - 16 + 7) + header[16:]
    blank = grown + tlv(0x03, b"\0\0\0\0")
    crc = crc32c(blank) ^ (1 if wrong else 0)
    return blank[:-4] + struct.pack("!I", crc)


def environ_after(srv, header, pieces=False, index=0):
    """REMOTE_ADDR, REMOTE_PORT and wsgi.url_scheme of a request sent right after ``header``
    (byte by byte if ``pieces``), and of a second one on the same connection."""
    with srv.client(index) as c:
        data = header + build_request("GET", "/environ/") + build_request("GET", "/environ/")
        if pieces:
            c.send_slowly(data, step=1, delay=0)
        else:
            c.send(data)
        seen = []
        for _ in range(2):
            resp = c.read_response()
            assert resp.status == 200, resp
            env = resp.json()
            seen.append((env["REMOTE_ADDR"], env["REMOTE_PORT"], env["wsgi.url_scheme"]))
    assert seen[0] == seen[1]  # the header is the connection's, for every request on it
    return seen[0]


def refused(srv, data, index=0):
    """The connection ends without an answer after ``data``."""
    with srv.client(index) as c:
        c.send(data, may_be_cut=True)
        return c.peer_closed(5) and not c.buf


# -- the header sets the peer ------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    (v1(), (CLIENT[0], str(CLIENT[1]), "http")),
    (v1("2001:db8::7", 5, "2001:db8::1", proto="TCP6"), ("2001:db8::7", "5", "http")),
    (v1("::ffff:198.51.100.1", 65535, "::1", 0, "TCP6"), ("::ffff:198.51.100.1", "65535", "http")),
    (v2(), (CLIENT[0], str(CLIENT[1]), "http")),
    (v2(family=2, src="2001:db8::7"), ("2001:db8::7", str(CLIENT[1]), "http")),
    (v2(family=1, transport=2), (CLIENT[0], str(CLIENT[1]), "http")),  # DGRAM: addresses hold
    (v2(family=3), ("", "", "http")),  # a unix-socket client, as on a unix: listener
    (v2(tlvs=ssl_tlv()), (CLIENT[0], str(CLIENT[1]), "https")),
    (v2(tlvs=ssl_tlv(client=0)), (CLIENT[0], str(CLIENT[1]), "http")),
    (v2(tlvs=tlv(0x04, b"") + tlv(0x02, b"example.com") + ssl_tlv() + tlv(0xE0, b"x" * 300)),
     (CLIENT[0], str(CLIENT[1]), "https")),
    (with_crc(v2()), (CLIENT[0], str(CLIENT[1]), "http")),
], ids=["v1-tcp4", "v1-tcp6", "v1-mapped", "v2-inet", "v2-inet6", "v2-dgram", "v2-unix",
        "v2-ssl", "v2-ssl-not-tls", "v2-tlvs", "v2-crc32c"])
def test_the_header_names_the_client(start, header, expected):
    srv = start.apps(ROUTER, proxy_protocol="auto")
    assert environ_after(srv, header) == expected


def test_a_header_in_pieces_with_requests_right_behind_it(start):
    srv = start.apps(ROUTER, proxy_protocol="auto")
    assert environ_after(srv, v1(), pieces=True) == (CLIENT[0], str(CLIENT[1]), "http")
    expected = (CLIENT[0], str(CLIENT[1]), "https")
    assert environ_after(srv, v2(tlvs=ssl_tlv()), pieces=True) == expected


@pytest.mark.parametrize("header", [
    b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 anything at all\r\n", v2(command=0),
    v2(command=0, family=1), v2(family=0, transport=0), v2(family=1, transport=0),
], ids=["v1-unknown", "v1-unknown-rest", "v2-local", "v2-local-addresses", "v2-unspec",
        "v2-unspec-transport"])
def test_local_and_unknown_keep_the_connections_own_peer(start, header):
    srv = start.apps(ROUTER, proxy_protocol="auto")
    addr, port, scheme = environ_after(srv, header)
    assert (addr, scheme) == ("127.0.0.1", "http") and int(port) > 0


def test_forwarded_headers_are_believed_only_from_a_trusted_client(start):
    # the PROXY header's client is the peer from then on: a client behind a TCP balancer
    # cannot have its X-Forwarded-For believed, a trusted one (127.0.0.1 here) can
    srv = start.apps(ROUTER, proxy_protocol="v1")
    forwarded = [("X-Forwarded-For", "198.51.100.99"), ("X-Forwarded-Proto", "https")]
    for src, expected in ((CLIENT[0], (CLIENT[0], "http")),
                          ("127.0.0.1", ("198.51.100.99", "https"))):
        with srv.client() as c:
            c.send(v1(src) + build_request("GET", "/environ/", forwarded))
            env = c.read_response().json()
        assert (env["REMOTE_ADDR"], env["wsgi.url_scheme"]) == expected


def test_the_mode_is_the_only_version_accepted(start):
    srv = start.apps(ROUTER, ROUTER, s0_proxy_protocol="v1", s1_proxy_protocol="v2")
    assert environ_after(srv, v1(), index=0)[0] == CLIENT[0]
    assert refused(srv, v2() + build_request(), index=0)
    assert environ_after(srv, v2(), index=1)[0] == CLIENT[0]
    assert refused(srv, v1() + build_request(), index=1)


def test_a_unix_socket_peer_may_send_it(start, tmp_path):
    srv = start.apps(ROUTER, bind="unix:%s" % (tmp_path / "s"), proxy_protocol="v1",
                     forwarded_allow_ips="10.9.9.9")
    assert environ_after(srv, v1())[:2] == (CLIENT[0], str(CLIENT[1]))


# -- what is refused ---------------------------------------------------------------------------

BAD_V1 = {
    "missing": build_request(),
    "leading-zero-address": v1("203.0.113.07"),
    "port-too-big": b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 80\r\n",
    "port-leading-zero": b"PROXY TCP4 1.2.3.4 5.6.7.8 080 80\r\n",
    "address-out-of-range": v1("256.1.1.1"),
    "short-address": v1("1.2.3"),
    "family-mismatch": v1("2001:db8::1", proto="TCP4"),
    "v4-as-v6": v1("1.2.3.4", proto="TCP6"),
    "unknown-protocol": v1(proto="UDP4"),
    "two-spaces": b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
    "trailing-space": b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
    "missing-field": b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    "bare-lf": v1()[:-2] + b"\n",
    "bare-cr": v1()[:-2] + b"\rX\n",
    "no-crlf-in-107": b"PROXY UNKNOWN " + b"x" * 100 + b"\r\n",
    "lowercase": v1().lower(),
    "nul": b"PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n",
}
BAD_V2 = {
    "version-1": V2_SIGNATURE + b"\x11\x11\x00\x0c" + b"\0" * 12,
    "command-2": V2_SIGNATURE + b"\x22\x11\x00\x0c" + b"\0" * 12,
    "family-4": V2_SIGNATURE + b"\x21\x41\x00\x0c" + b"\0" * 12,
    "transport-3": V2_SIGNATURE + b"\x21\x13\x00\x0c" + b"\0" * 12,
    "too-long": V2_SIGNATURE + b"\x21\x11\xff\xff",
    "short-for-inet": v2(addresses=b"\0" * 11),
    "short-for-inet6": v2(family=2, addresses=b"\0" * 35),
    "short-for-unix": v2(family=3, addresses=b"\0" * 215),
    "tlv-past-the-end": v2(tlvs=b"\x20\x00\x09\x01"),
    "tlv-cut": v2(tlvs=b"\x04\x00"),
    "short-ssl-tlv": v2(tlvs=tlv(0x20, b"\x01\0\0")),
    "crc-wrong": with_crc(v2(), wrong=True),
    "crc-size": v2(tlvs=tlv(0x03, b"\0\0\0")),
    "signature-typo": V2_SIGNATURE[:-1] + b"\x0b" + v2()[12:],
}


@pytest.mark.parametrize("data", list(BAD_V1.values()), ids=list(BAD_V1))
def test_a_malformed_or_missing_v1_header_closes_the_connection(start, data):
    srv = start.apps(ROUTER, proxy_protocol="v1")
    assert refused(srv, data + build_request("GET", "/hello/"))
    assert srv.wait_stderr("closed: ", 5), srv.stderr()
    assert environ_after(srv, v1())[0] == CLIENT[0]  # and the server goes on


@pytest.mark.parametrize("data", list(BAD_V2.values()), ids=list(BAD_V2))
def test_a_malformed_v2_header_closes_the_connection(start, data):
    srv = start.apps(ROUTER, proxy_protocol="auto")
    assert refused(srv, data + build_request("GET", "/hello/"))
    assert srv.wait_stderr("closed: PROXY v2", 5) or srv.wait_stderr("closed: no PROXY", 1), \
        srv.stderr()
    assert environ_after(srv, v2())[0] == CLIENT[0]


def test_a_header_cut_short_or_too_slow_is_logged(start):
    srv = start.apps(ROUTER, proxy_protocol="auto", header_timeout=0.5)
    with srv.client() as c:
        c.send(v1()[:10])
        c.shutdown_write()
        assert c.peer_closed(5) and not c.buf
    assert srv.wait_stderr("closed inside its PROXY header", 5), srv.stderr()
    with srv.client() as c:
        c.send(v2()[:20])
        assert c.peer_closed(5) and not c.buf  # no 408: it never spoke HTTP
    assert srv.wait_stderr("no complete PROXY header within --header-timeout", 5)
    with srv.client() as c:  # a port probe: nothing sent, nothing logged
        c.shutdown_write()
        assert c.peer_closed(5)
    assert srv.stderr().count("127.0.0.1 closed") == 2, srv.stderr()


def test_an_untrusted_peer_is_refused_at_once(start):
    srv = start.apps(ROUTER, proxy_protocol="v1", forwarded_allow_ips="10.9.9.9")
    with srv.client() as c:
        assert c.peer_closed(5) and not c.buf  # before it sent anything
    assert srv.wait_stderr("connection from 127.0.0.1 refused: --proxy-protocol is on and "
                           "it is not in --forwarded-allow-ips", 5), srv.stderr()


def test_a_flood_of_refused_connections_is_logged_a_few_lines_a_second(start):
    """Five lines a second at most; the next line counts those left out, so none goes unsaid
    (a port scan against a --proxy-protocol listener must not flood the log)."""
    srv = start.apps(ROUTER, proxy_protocol="v1", forwarded_allow_ips="10.9.9.9")
    t0 = time.monotonic()
    for _ in range(30):
        with srv.client() as c:
            assert c.peer_closed(5)
    elapsed = time.monotonic() - t0
    time.sleep(1.1)  # a new second: the next refusal is logged, with the count
    with srv.client() as c:
        assert c.peer_closed(5)
    assert srv.wait_stderr("more such connections, not logged", 5), srv.stderr()
    lines = [line for line in srv.stderr().splitlines() if "127.0.0.1 refused" in line]
    left_out = sum(int(n) for n in re.findall(r"\(and (\d+) more such connections", srv.stderr()))
    assert len(lines) + left_out == 31, srv.stderr()
    assert len(lines) <= 5 * (math.ceil(elapsed) + 1) + 1, (elapsed, lines)


def test_the_option_on_the_command_line_and_a_wrong_value(start, tmp_path):
    srv = start.cli("-b", "127.0.0.1:0", "-w", "2", "--proxy-protocol", "v2", "app:app")
    with srv.client() as c:
        c.send(v2() + build_request("GET", "/p"))
        assert c.read_response().json()["remote_addr"] == CLIENT[0]
    result = run_command([sys.executable, "-m", "aiowsgi", "--proxy-protocol", "v3", "app:app"],
                         cwd=tmp_path)
    assert result.returncode == 2 and "invalid --proxy-protocol 'v3'" in result.stderr


# -- a real HAProxy ----------------------------------------------------------------------------

HAPROXY = """
frontend web
    bind {listen0}
    bind {listen1} ssl crt %(pem)s
    use_backend v1 if {{ path_beg /v1/ }}
    default_backend v2

backend v1
    option httpchk GET /healthz
    http-check expect status 200
    server app %(address)s check inter 200ms send-proxy

backend v2
    option httpchk GET /healthz
    http-check expect status 200
    server app %(address)s check inter 200ms send-proxy-v2-ssl
"""


def through_haproxy(address, path, tls=False):
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        host, port = address.split(":")
        conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=context,
                                           source_address=(SOURCE, 0))
    else:
        conn = http.client.HTTPConnection(address, timeout=10, source_address=(SOURCE, 0))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200, (resp.status, resp.read())
        return resp.read()
    finally:
        conn.close()


def test_behind_haproxy_sending_v1_and_v2_with_its_tls(start, tmp_path):
    # HAProxy's health checks send a header too (v2: a LOCAL one), or the servers would never
    # be UP
    aio = start.cli("-b", "127.0.0.1:0", "-w", "2", "--proxy-protocol", "auto",
                    "--health-path", "/healthz", "--access-log", tmp_path / "access.log",
                    "app:app")
    haproxy = HAProxy(start, HAPROXY % {"pem": tls_certificate(tmp_path), "address":
                                        aio.address}, listeners=2)
    assert haproxy.wait_states("v1", {"app": "UP"}), haproxy.states("v1")
    assert haproxy.wait_states("v2", {"app": "UP"}), haproxy.states("v2")
    seen = {}
    for version in ("v1", "v2"):
        for tls in (False, True):
            path = "/%s/%s" % (version, "tls" if tls else "plain")
            info = get_json_via(haproxy.addresses[1 if tls else 0], path, tls)
            assert info["path"] == path
            assert info["remote_addr"] == SOURCE  # the client, as HAProxy saw it
            seen[path] = info["scheme"]
    # v2's SSL TLV says https for the TLS frontend; v1 has no way to say it
    assert seen == {"/v1/plain": "http", "/v1/tls": "http", "/v2/plain": "http",
                    "/v2/tls": "https"}, seen
    assert "closed" not in aio.stderr(), aio.stderr()
    # the access log has the client's address too (the health checks: HAProxy's own)
    log = tmp_path / "access.log"
    assert wait_for(lambda: log.exists() and "GET /v2/tls HTTP/1.1" in log.read_text())
    lines = [line for line in log.read_text().splitlines() if "/healthz" not in line]
    assert len(lines) == 4 and all(line.startswith(SOURCE + " ") for line in lines), lines


def get_json_via(address, path, tls):
    return json.loads(through_haproxy(address, path, tls))


def test_raw_client_helpers_agree_with_the_spec_examples():
    # the CRC32c of the test, checked against RFC 3720's example: 32 bytes of zeros
    assert crc32c(b"\0" * 32) == 0x8A9136AA
    assert len(v1("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535,
                  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, "TCP6")) == 104
