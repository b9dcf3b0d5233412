"""The core's access-log hook (``access_log(environ, status, body_bytes, seconds)``): called
once per finished request, also for the answers the server gives itself (aiowsgi/_core.pyi).
tests/serve.py ``--record-access`` records each call in the events file."""

import time

import pytest

from tests.support import RawClient, ServerProcess, build_request, wait_for

HEADER_LIMIT = 2048


@pytest.fixture(scope="module")
def logged():
    srv = ServerProcess("tests.apps:router", record_access=True,
                        max_header_size=HEADER_LIMIT, max_body_size=1000).start()
    yield srv
    srv.stop()


def access_lines(srv):
    return srv.events("access")


def new_lines(srv, before, count, timeout=5):
    assert wait_for(lambda: len(access_lines(srv)) >= before + count, timeout), \
        access_lines(srv)[before:]
    return access_lines(srv)[before:]


def test_access_log_once_per_request_with_status_and_body_size(logged):
    before = len(access_lines(logged))
    with RawClient(logged.host, logged.port) as c:
        c.send(build_request("GET", "/hello/") + build_request("GET", "/environ/x?y=1")
               + build_request("GET", "/scripted/?status=299+Odd&part=abc&part=de"))
        sizes = [len(c.read_response().body) for _ in range(3)]
    lines = new_lines(logged, before, 3)
    assert lines == [["200", str(sizes[0]), "GET", "/hello/"],
                     ["200", str(sizes[1]), "GET", "/environ/x?y=1"],
                     ["299", "5", "GET", "/scripted/?status=299+Odd&part=abc&part=de"]]


def test_access_log_for_an_app_error(logged):
    before = len(access_lines(logged))
    with RawClient(logged.host, logged.port) as c:
        c.request("GET", "/raise_before_headers/")
        assert c.read_response().status == 500
    lines = new_lines(logged, before, 1)
    assert lines[0][0] == "500" and lines[0][2:] == ["GET", "/raise_before_headers/"]


@pytest.mark.parametrize("raw,status", [
    (b"GARBAGE\r\n\r\n", 400),
    (build_request("GET", "/environ/", [("X-Big", "b" * (HEADER_LIMIT + 10))]), 431),
    (build_request("POST", "/echo/", [("Content-Length", "100000")]), 413),
], ids=["400", "431", "413"])
def test_access_log_for_requests_the_server_refuses(logged, raw, status):
    before = len(access_lines(logged))
    with RawClient(logged.host, logged.port) as c:
        c.send(raw)
        assert c.read_response().status == status
    lines = new_lines(logged, before, 1)
    assert len(lines) == 1 and lines[0][0] == str(status), lines


def test_access_log_once_for_a_response_cut_by_an_app_error(logged):
    before = len(access_lines(logged))
    with RawClient(logged.host, logged.port) as c:
        c.request("GET", "/raise_in_generator/")
        assert not c.read_response().complete
    lines = new_lines(logged, before, 1)
    time.sleep(0.3)  # a moment for a duplicate to show
    assert len(access_lines(logged)) == before + 1, access_lines(logged)[before:]
    assert lines[0][0] == "200" and lines[0][3] == "/raise_in_generator/"
