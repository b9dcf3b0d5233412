"""PEP 3333's calling rules (SPEC section 4): ``start_response`` and ``exc_info``, and the
iterable's ``close()``, called exactly once however the response ends, observed from inside
the server process through the apps' events (tests/support/apps.py ``record``)."""

import time

import pytest

from tests.support.server import assert_still_serving, unique_id


def test_exc_info_before_any_body_replaces_the_response(server):
    with server.client() as c:
        c.request("GET", "/exc_info_before_body/")
        resp = c.read_response()
        assert resp.status == 503
        assert resp.body == b"replaced"
        assert not resp.has_header("X-First")  # the first headers are discarded
        c.request("GET", "/environ/after")
        assert c.read_response().json()["PATH_INFO"] == "/environ/after"


@pytest.mark.parametrize("app,first,error", [
    ("exc_info_after_body", b"first part;", "ValueError"),
    ("exc_info_after_write", b"written;", "KeyError"),
], ids=["after_a_body_item", "after_write"])
def test_exc_info_after_the_body_started_is_reraised(server, app, first, error):
    ident = unique_id()
    with server.client() as c:
        c.request("GET", "/%s/?id=%s" % (app, ident))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.body.startswith(first) and b"must not be sent" not in resp.body
        assert not resp.complete  # the response was cut: the error came after the headers
    assert server.wait_event(ident, "reraised")
    assert server.events(ident) == [["reraised", error]]
    assert_still_serving(server)


def test_a_block_is_sent_before_the_app_is_asked_for_the_next(server, tmp_path):
    """PEP 3333: a yielded block goes out before the next is asked for, since the app may take
    its time making it; even with a Content-Length, only the block that completes the body may
    wait for the iterator's end."""
    gate, ident = tmp_path / "open", unique_id()
    with server.client() as c:
        start = time.monotonic()
        c.request("GET", "/gated_stream/?id=%s&open=%s" % (ident, gate))
        assert c.read_head().status == 200
        assert c.read_exact(len(b"first;")) == b"first;"
        # while the app waits for the gate (which gives up after 10 s)
        assert time.monotonic() - start < 9
        assert server.wait_event(ident, "waiting")
        gate.touch()
        assert c.read_exact(len(ident)) == ident.encode()
        c.request("GET", "/hello/")
        assert c.read_response().status == 200


def test_start_response_twice_without_exc_info_is_an_error(server):
    ident = unique_id()
    resp = server.get("/start_response_twice/?id=" + ident)
    assert resp.status == 500
    assert b"second start_response accepted" not in resp.body
    assert server.events(ident)[0][0] == "raised"


def test_close_is_called_once_after_a_complete_response(server):
    ident = unique_id()
    with server.client() as c:
        c.request("GET", "/closing/?mode=normal&id=" + ident)
        assert c.read_response().body == b"part1;part2;part3;"
        c.request("GET", "/hello/")  # close() must come before the next request is served
        c.read_response()
        assert server.count_events(ident, "close") == 1
    assert_still_serving(server)
    assert server.events(ident) == [["call", "normal"], ["end"], ["close", "4"]]


@pytest.mark.parametrize("method,query,status,complete", [
    ("HEAD", "mode=normal", 200, True),
    ("GET", "mode=raise", 200, False),  # cut after "first;"
    ("GET", "mode=bad_item", 500, True),
    ("GET", "mode=normal&status=bogus", 500, True),
], ids=["head_request", "iterable_raises", "item_not_bytes", "invalid_status"])
def test_close_is_called_once_when_the_response_ends_otherwise(server, method, query, status,
                                                               complete):
    ident = unique_id()
    with server.client() as c:
        c.request(method, "/closing/?%s&id=%s" % (query, ident))
        resp = c.read_response(method)
        assert (resp.status, resp.complete) == (status, complete), resp
    assert server.wait_event(ident, "close")
    assert_still_serving(server)
    assert server.count_events(ident, "close") == 1


@pytest.mark.parametrize("target,read", [
    ("/closing/?mode=normal", "all"),  # kept alive, gone between requests
    ("/closing/?mode=normal&sleep=0.5", 0),  # gone while the app runs
    ("/closing/?mode=endless", 256 * 1024),  # mid-way through an iterable with close()
    ("/stream/?chunks=100000&size=65536", 100000),  # mid-way through a generator
], ids=["between_requests", "while_the_app_runs", "mid_iterable", "mid_generator"])
def test_close_is_called_once_when_the_client_leaves(server, target, read):
    ident = unique_id()
    c = server.client()
    c.request("GET", "%s&id=%s" % (target, ident))
    if read == "all":
        assert c.read_response().status == 200
    elif read:
        assert c.read_head().status == 200
        assert len(c.read_exact(read)) == read
    c.close()  # with unread data, the kernel sends a reset
    assert server.wait_event(ident, "close", timeout=15), server.events(ident)
    assert_still_serving(server)
    assert server.count_events(ident, "close") == 1
    if read and read != "all":
        assert ["end"] not in server.events(ident)  # stopped early, not run to the end
