"""Real framework apps (bottle, flask) over one kept-alive http.client connection: routes,
JSON, a form POST."""

import http.client
import json
from urllib.parse import urlencode

import pytest


@pytest.fixture(params=["bottle", "flask"])
def framework_server(request, server_factory):
    pytest.importorskip(request.param)
    return request.param, server_factory("tests.apps:%s_app" % request.param)


def test_framework_app_over_one_keep_alive_connection(framework_server):
    name, srv = framework_server
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("GET", "/hello/world")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"Hello, world!"
        sock = conn.sock

        conn.request("GET", "/json")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("application/json")
        assert json.loads(resp.read()) == {"framework": name, "items": [1, 2, 3]}

        form = urlencode({"name": "Zoë & co", "n": "42"})
        conn.request("POST", "/form", body=form,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        assert resp.status == 200
        assert json.loads(resp.read()) == {"name": "Zoë & co", "n": 42}

        conn.request("POST", "/json", body=json.dumps({"values": [1, 2, 3.5]}),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert json.loads(resp.read()) == {"sum": 6.5}

        conn.request("GET", "/no/such/route")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()

        conn.request("GET", "/hello/again")
        resp = conn.getresponse()
        assert resp.read() == b"Hello, again!"
        assert conn.sock is sock, "the connection was not kept alive"
        assert resp.getheader("Server") == "aiowsgi"
    finally:
        conn.close()


def test_flask_streamed_response_is_chunked(server_factory):
    pytest.importorskip("flask")
    srv = server_factory("tests.apps:flask_app")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.read() == b"".join(b"line %d\n" % i for i in range(5))
        conn.request("GET", "/missing")
        resp = conn.getresponse()
        assert resp.status == 404
        resp.read()
    finally:
        conn.close()


def test_bottle_custom_status(server_factory):
    pytest.importorskip("bottle")
    srv = server_factory("tests.apps:bottle_app")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    try:
        conn.request("GET", "/status")
        resp = conn.getresponse()
        assert resp.status == 418 and resp.read() == b"teapot"
    finally:
        conn.close()
