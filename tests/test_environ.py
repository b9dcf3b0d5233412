"""The WSGI environ (SPEC section 4, PEP 3333), as a real app sees it: CGI keys, HTTP_ keys from
headers however they are spelt and sent, wsgi.* keys, a fresh dict per request."""

import json

import pytest

from tests.support.client import build_request
from tests.support.server import unique_id


def environ_of(server, target="/environ/", headers=(), body=b"", method="GET",
               version="HTTP/1.1"):
    resp = server.get(target, headers=headers, version=version, method=method, body=body)
    assert resp.status == 200, resp
    return resp.json()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                                    "PROPFIND", "MKCOL", "LOCK", "REPORT", "PURGE"])
def test_request_method_is_passed_through(server, method):
    env = environ_of(server, method=method, body=b"x" if method in ("POST", "PUT") else b"")
    assert env["REQUEST_METHOD"] == method


def test_script_name_is_empty_and_path_info_is_the_path(server):
    env = environ_of(server, "/environ/a/b.txt")
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/a/b.txt"


def test_path_info_is_percent_decoded_as_latin1(server):
    # %C3%A9 is UTF-8 "é": PEP 3333 wants the raw bytes as a latin-1 str ("Ã©").
    env = environ_of(server, "/environ/caf%C3%A9/a%20b/%7E%2Fx?q=%C3%A9")
    assert env["PATH_INFO"] == "/environ/caf\xc3\xa9/a b/~/x"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/environ/café/a b/~/x"


def test_query_string_is_raw_and_empty_when_absent(server):
    env = environ_of(server, "/environ/q?a=1&b=%20two&c=%C3%A9&d")
    assert env["QUERY_STRING"] == "a=1&b=%20two&c=%C3%A9&d"
    env = environ_of(server, "/environ/noquery")
    assert env["QUERY_STRING"] == ""


def test_raw_uri_is_the_request_target_unchanged(server):
    target = "/environ/caf%C3%A9/x%2Fy?a=%20b&c=d"
    env = environ_of(server, target)
    assert env["RAW_URI"] == target
    assert "%" not in env["PATH_INFO"]


def test_server_name_and_port_match_the_listening_socket(server):
    env = environ_of(server, headers=[("Host", "%s:%d" % (server.host, server.port))])
    assert env["SERVER_NAME"] == server.host
    assert env["SERVER_PORT"] == str(server.port)
    assert env["HTTP_HOST"] == "%s:%d" % (server.host, server.port)


@pytest.mark.parametrize("version", ["HTTP/1.0", "HTTP/1.1"])
def test_server_protocol_is_the_request_version(server, version):
    assert environ_of(server, version=version)["SERVER_PROTOCOL"] == version


def test_remote_addr_and_port_are_the_client_socket(server):
    with server.client() as c:
        local_host, local_port = c.sock.getsockname()[:2]
        c.request("GET", "/environ/")
        env = c.read_response().json()
    assert env["REMOTE_ADDR"] == local_host == "127.0.0.1"
    assert env["REMOTE_PORT"] == str(local_port)


def test_content_type_and_length_absent_when_not_sent(server):
    env = environ_of(server)
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
        assert key not in env, key


def test_content_type_and_length_present_when_sent(server):
    env = environ_of(server, method="POST", body=b"a=1&b=2",
                     headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "7"
    assert env["_body"] == "a=1&b=2"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_other_headers_become_http_keys(server):
    env = environ_of(server, headers=[("X-Custom-Thing", "some value"), ("accept", "*/*"),
                                      ("User-Agent", "aiowsgi-tests/1"),
                                      ("X-Empty", "")])
    assert env["HTTP_X_CUSTOM_THING"] == "some value"
    assert env["HTTP_ACCEPT"] == "*/*"
    assert env["HTTP_USER_AGENT"] == "aiowsgi-tests/1"
    assert env["HTTP_X_EMPTY"] == ""
    assert env["HTTP_HOST"] == "localhost"


def test_header_value_whitespace_is_trimmed(server):
    raw = (b"GET /environ/ HTTP/1.1\r\nHost: localhost\r\nX-Padded: \t padded value \t \r\n"
           b"\r\n")
    with server.client() as c:
        c.send(raw)
        env = c.read_response().json()
    assert env["HTTP_X_PADDED"] == "padded value"


def test_repeated_headers_are_joined_with_comma(server):
    env = environ_of(server, headers=[("X-Multi", "one"), ("Accept", "text/html"),
                                      ("x-multi", "two"), ("X-MULTI", "three")])
    assert env["HTTP_X_MULTI"] == "one,two,three"
    assert env["HTTP_ACCEPT"] == "text/html"


@pytest.mark.parametrize("order", ["underscore_first", "dash_first"])
def test_header_names_with_underscore_are_dropped(server, order):
    headers = [("X_Auth_User", "admin"), ("X-Auth-User", "guest"),
               ("Secret_Token", "forged")]
    if order == "dash_first":
        headers.reverse()
    env = environ_of(server, headers=headers)
    assert env["HTTP_X_AUTH_USER"] == "guest"
    assert "HTTP_SECRET_TOKEN" not in env
    assert not any("admin" in str(v) or "forged" in str(v) for v in env.values())


def test_header_value_bytes_above_ascii_are_latin1(server):
    raw = build_request("GET", "/environ/", [("X-Name", b"caf\xc3\xa9 \xff")])
    with server.client() as c:
        c.send(raw)
        env = c.read_response().json()
    assert env["HTTP_X_NAME"] == "caf\xc3\xa9 \xff"


def test_wsgi_keys(server):
    env = environ_of(server)
    assert env["wsgi.version"] == {"tuple": [1, 0]}
    assert env["wsgi.url_scheme"] == "http"
    assert {"read", "readline", "readlines", "__iter__"} <= set(env["wsgi.input"]["attrs"])
    assert {"write", "writelines", "flush"} <= set(env["wsgi.errors"]["attrs"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert isinstance(env[key], bool), key
    assert env["wsgi.run_once"] is False
    assert env["wsgi.file_wrapper"]["callable"] is True
    assert env["wsgi.input_terminated"] is True


def test_environ_keys_and_cgi_values_are_native_strings(server):
    env = environ_of(server, "/environ/x?y=1", headers=[("X-A", "b")], method="POST",
                     body=b"zz")
    assert env["_key_types"] == ["str"]
    assert set(env["_value_types"].values()) == {"str"}, env["_value_types"]
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
                "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI"):
        assert key in env, key


def test_environ_is_fresh_for_each_request_on_a_connection(server):
    with server.client() as c:
        c.request("GET", "/environ/first?mutate=1", [("X-Only-First", "1")])
        first = c.read_response().json()
        c.request("GET", "/environ/second")
        second = c.read_response().json()
    assert first["HTTP_X_ONLY_FIRST"] == "1"
    assert "HTTP_X_ONLY_FIRST" not in second
    assert "HTTP_X_MUTATED" not in second
    assert second["PATH_INFO"] == "/environ/second"
    assert second["QUERY_STRING"] == ""


def test_wsgi_errors_writes_reach_the_error_log(server):
    marker = unique_id("errlog")
    resp = server.get("/errors_stream/?text=" + marker)
    assert resp.status == 200
    stderr = server.wait_stderr(marker + " via writelines")
    assert stderr is not None, server.stderr()[-2000:]
    assert marker + " via write" in stderr


@pytest.mark.parametrize("target,method,body", [
    ("/validated_hello/", "GET", b""),
    ("/validated_hello/?a=b", "HEAD", b""),
    ("/validated_echo/", "POST", b"line one\nline two\n"),
    ("/validated_echo/", "POST", b""),
    ("/validated_gen/", "GET", b""),
])
def test_validator_wrapped_apps_serve_without_errors(server, target, method, body):
    before = len(server.stderr())
    with server.client() as c:
        for _ in range(2):  # twice on one connection: the environ stays valid on reuse
            c.request(method, target, body=body,
                      content_length=len(body) if method == "POST" else None)
            resp = c.read_response(method)
            assert resp.status == 200, (resp, server.stderr()[-3000:])
            assert resp.complete
            if target.startswith("/validated_echo"):
                assert resp.body == body
            elif target.startswith("/validated_gen"):
                assert resp.body == b"via write;item 0;item 1;item 2;"
    # The validator reports misuse (e.g. an iterable never closed) by raising or warning.
    # One more request lets a late report (from __del__) surface before stderr is checked.
    server.get("/hello/")
    stderr = server.stderr()[before:]
    for bad in ("AssertionError", "WSGIWarning", "Traceback"):
        assert bad not in stderr, stderr[-3000:]


def test_http10_request_without_host_header(server):
    with server.client() as c:
        c.send(b"GET /environ/plain HTTP/1.0\r\n\r\n")
        resp = c.read_response()
    assert resp.status == 200
    env = resp.json()
    assert env["PATH_INFO"] == "/environ/plain"
    assert "HTTP_HOST" not in env
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"


def test_absolute_form_target(server):
    # RFC 9112 section 3.2.2: a server must accept the absolute form.
    resp = server.get("http://localhost/environ/abs?x=1")
    assert resp.status == 200
    env = resp.json()
    assert env["PATH_INFO"] == "/environ/abs"
    assert env["QUERY_STRING"] == "x=1"


def test_environ_json_is_well_formed(server):
    # Guard for the helper itself: a body that is not JSON would make other tests meaningless.
    resp = server.get("/environ/")
    assert json.loads(resp.body)["PATH_INFO"] == "/environ/"


def test_many_request_headers(server):
    headers = [("X-Header-%d" % i, "value-%d" % i) for i in range(500)]
    env = environ_of(server, headers=headers)
    for i in range(500):
        assert env["HTTP_X_HEADER_%d" % i] == "value-%d" % i


def test_long_header_values_sent_in_pieces_are_intact(server):
    long_value = "".join(chr(33 + i % 90) for i in range(30000))
    raw = build_request("GET", "/environ/long", [("X-Long-Header-Name-" + "n" * 200, "short"),
                                                 ("X-Long", long_value), ("X-After", "after")])
    with server.client() as c:
        c.send_slowly(raw, step=997, delay=0.001)
        env = c.read_response().json()
    assert env["HTTP_X_LONG"] == long_value
    assert env["HTTP_X_LONG_HEADER_NAME_" + "N" * 200] == "short"
    assert env["HTTP_X_AFTER"] == "after"
