"""PEP 3333 calling rules: start_response and exc_info, write(), and the iterable's close(),
observed from inside the server process through the events file (tests/apps.py ``record``)."""

import time

import pytest

from tests.support import RawClient, get, unique_id


def close_count(server, ident):
    return [e[0] for e in server.events(ident)].count("close")


def settle(server):
    """One full request: the loop has moved on past anything the previous request left."""
    assert get(server.port, "/hello/").status == 200


def test_exc_info_before_any_body_replaces_the_response(server):
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/exc_info_before_body/")
        resp = c.read_response()
        assert resp.status == 503
        assert resp.body == b"replaced"
        assert not resp.has_header("X-First")  # the first headers are discarded
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


def test_exc_info_after_body_started_is_reraised(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/exc_info_after_body/?id=" + ident)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body.startswith(b"first part;")
        assert b"must not be sent" not in resp.body
        assert not resp.complete  # the response was cut: the error came after the headers
    assert server.wait_event(ident, "reraised")
    assert server.events(ident) == [["reraised", "ValueError", "late-error-marker"]]
    settle(server)


def test_exc_info_after_write_is_reraised(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/exc_info_after_write/?id=" + ident)
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body.startswith(b"written;") and b"must not be sent" not in resp.body
        assert not resp.complete
    assert server.wait_event(ident, "reraised")
    assert server.events(ident) == [["reraised", "KeyError"]]
    settle(server)


def test_start_response_twice_without_exc_info_is_an_error(server):
    ident = unique_id()
    resp = get(server.port, "/start_response_twice/?id=" + ident)
    assert resp.status == 500
    assert b"second start_response accepted" not in resp.body
    assert server.events(ident)[0][0] == "raised"


def test_start_response_returns_a_write_callable(server):
    resp = get(server.port, "/write_then_return/")
    assert resp.body == b"written-1;written-2;returned"


def test_close_is_called_once_after_a_complete_response(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/closing/?mode=normal&id=" + ident)
        resp = c.read_response()
        assert resp.body == b"part1;part2;part3;"
        c.request("GET", "/hello/")  # close() must come before the next request is served
        c.read_response()
        assert close_count(server, ident) == 1
    settle(server)
    assert close_count(server, ident) == 1
    assert server.events(ident) == [["call", "normal"], ["close", "4"]]


def test_close_is_called_once_on_a_head_request(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("HEAD", "/closing/?mode=normal&id=" + ident)
        assert c.read_response("HEAD").status == 200
    assert server.wait_event(ident, "close")
    settle(server)
    assert close_count(server, ident) == 1


def test_close_is_called_once_when_the_iterable_raises(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/closing/?mode=raise&id=" + ident)
        resp = c.read_response()
        assert resp.status == 200 and not resp.complete  # cut after "first;"
    assert server.wait_event(ident, "close")
    settle(server)
    assert close_count(server, ident) == 1


def test_close_is_called_once_when_an_item_is_not_bytes(server):
    ident = unique_id()
    resp = get(server.port, "/closing/?mode=bad_item&id=" + ident)
    assert resp.status == 500
    assert server.wait_event(ident, "close")
    settle(server)
    assert close_count(server, ident) == 1


def test_close_is_called_once_when_the_status_is_invalid(server):
    ident = unique_id()
    resp = get(server.port, "/closing/?mode=normal&status=bogus&id=" + ident)
    assert resp.status == 500
    assert server.wait_event(ident, "close")
    settle(server)
    assert close_count(server, ident) == 1


def test_close_is_called_once_when_the_client_leaves_mid_stream(server):
    ident = unique_id()
    c = RawClient(server.host, server.port)
    c.request("GET", "/closing/?mode=endless&id=" + ident)
    head = c.read_head()
    assert head.status == 200
    assert len(c.read_exact(256 * 1024)) == 256 * 1024
    c.close()  # with unread data: the kernel sends a RST
    assert server.wait_event(ident, "close", timeout=15), server.events(ident)
    settle(server)
    time.sleep(0.2)
    assert close_count(server, ident) == 1
    pulled = int(server.events(ident)[-1][1])
    assert pulled < 16384  # stopped early, not run to the end


def test_close_is_called_once_when_a_generator_is_abandoned(server):
    # The stream app's generator records "close" from its finally: clause.
    ident = unique_id()
    c = RawClient(server.host, server.port)
    c.request("GET", "/stream/?chunks=100000&size=65536&id=" + ident)
    assert c.read_head().status == 200
    c.read_exact(100000)
    c.close()
    assert server.wait_event(ident, "close", timeout=15), server.events(ident)
    settle(server)
    assert close_count(server, ident) == 1
    assert ["end"] not in server.events(ident)


def test_close_is_called_when_a_keep_alive_client_leaves_between_requests(server):
    ident = unique_id()
    with RawClient(server.host, server.port) as c:
        c.request("GET", "/closing/?mode=normal&id=" + ident)
        c.read_response()
    assert server.wait_event(ident, "close")
    settle(server)
    assert close_count(server, ident) == 1


@pytest.mark.parametrize("target", ["/raise_after_start/", "/no_start_response/",
                                    "/returns_none/"])
def test_app_misuse_before_the_body_gives_500(server, target):
    resp = get(server.port, target)
    assert resp.status == 500
    settle(server)
