"""Real framework apps (bottle, flask: tests/support/apps.py) over one kept-alive http.client
connection: routes, JSON, a form POST, a 404, a custom status and a streamed response."""

import http.client
import json
from urllib.parse import urlencode

import pytest

# what each framework answers besides the routes they share: (path, status, body, chunked)
OWN_ROUTES = {
    "bottle": [("/status", 418, b"teapot", False)],
    "flask": [("/stream", 200, b"".join(b"line %d\n" % i for i in range(5)), True),
              ("/missing", 404, None, False)],
}


@pytest.mark.parametrize("name", ["bottle", "flask"])
def test_framework_app_over_one_keep_alive_connection(start, name):
    pytest.importorskip(name)
    srv = start.apps("tests.support.apps:%s_app" % name)
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)

    def ask(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp, resp.read()

    try:
        resp, body = ask("GET", "/hello/world")
        assert (resp.status, body) == (200, b"Hello, world!")
        sock = conn.sock

        resp, body = ask("GET", "/json")
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("application/json")
        assert json.loads(body) == {"framework": name, "items": [1, 2, 3]}

        resp, body = ask("POST", "/form", urlencode({"name": "Zoë & co", "n": "42"}),
                         {"Content-Type": "application/x-www-form-urlencoded"})
        assert resp.status == 200 and json.loads(body) == {"name": "Zoë & co", "n": 42}

        resp, body = ask("POST", "/json", json.dumps({"values": [1, 2, 3.5]}),
                         {"Content-Type": "application/json"})
        assert json.loads(body) == {"sum": 6.5}

        assert ask("GET", "/no/such/route")[0].status == 404

        for path, status, expected, chunked in OWN_ROUTES[name]:
            resp, body = ask("GET", path)
            assert resp.status == status, path
            assert expected is None or body == expected, path
            assert (resp.getheader("Transfer-Encoding") == "chunked") == chunked, path

        resp, body = ask("GET", "/hello/again")
        assert body == b"Hello, again!"
        assert conn.sock is sock, "the connection was not kept alive"
        assert resp.getheader("Server") == "aiowsgi"
    finally:
        conn.close()
