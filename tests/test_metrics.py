"""--metrics-bind (SPEC section 9): Prometheus' text format at /metrics, served by the master
and summed over the workers; the C core counts every answer (the app's, its errors, the
server's own refusals) in memory the master reads; restarts by reason; and a real Prometheus
(Debian's ``prometheus``) scraping it."""

import json
import os
import re
import shutil
import signal
import socket
import threading
import urllib.parse
import urllib.request

import pytest

from aiowsgi.metrics import answer
from tests.support.client import get, get_json
from tests.support.server import write_cli_app
from tests.support.waits import scaled, wait_for

SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$")


def free_port():
    """A loopback port nobody listens on now (for programs that cannot bind port 0 and say
    which port they got)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(address, path="/metrics"):
    return get(address, path)


def samples(address):
    """{(name, labels): value} of one scrape."""
    resp = scrape(address)
    assert resp.status == 200, resp
    assert resp.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    out = {}
    for line in resp.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, labels, value = SAMPLE.match(line).groups()
            out[(name, labels or "")] = float(value)
    return out


def value(address, name, labels=""):
    return samples(address).get((name, labels), 0.0)


@pytest.fixture
def served(start, tmp_path):
    """The reporting app with two workers and metrics on a port of their own."""
    write_cli_app(tmp_path)
    metrics_port = free_port()
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "--metrics-bind",
                       "127.0.0.1:%d" % metrics_port, "--max-body-size", "100",
                       "--log-level", "debug", "app:app")
    server.metrics_address = "127.0.0.1:%d" % metrics_port
    assert wait_for(lambda: server.stderr().count("is serving") == 2)  # both booted
    return server


def test_requests_are_counted_by_status_class_and_method_over_all_workers(served):
    metrics = served.metrics_address
    for _ in range(6):
        assert get(served.address, "/").status == 200
    assert get(served.address, "/", method="HEAD").status == 200
    assert get(served.address, "/fail").status == 500
    assert get(served.address, "/", method="POST", body=b"x" * 200).status == 413
    with served.client() as c:  # refused before a method was read
        c.send(b"GARBAGE\r\n\r\n")
        assert c.read_response().status == 400
    assert wait_for(lambda: value(metrics, "aiowsgi_requests_total",
                                  'status="4xx",method="other"') == 1)
    got = samples(metrics)
    assert got[("aiowsgi_requests_total", 'status="2xx",method="GET"')] == 6
    assert got[("aiowsgi_requests_total", 'status="2xx",method="HEAD"')] == 1
    assert got[("aiowsgi_requests_total", 'status="5xx",method="GET"')] == 1
    assert got[("aiowsgi_requests_total", 'status="4xx",method="POST"')] == 1
    assert got[("aiowsgi_request_duration_seconds_count", "")] == 10
    assert got[("aiowsgi_request_duration_seconds_bucket", 'le="+Inf"')] == 10
    assert 0 < got[("aiowsgi_request_duration_seconds_sum", "")] < 10
    assert got[("aiowsgi_response_body_bytes_total", "")] > 6 * 50
    assert got[("aiowsgi_workers", "")] == 2
    assert got[("aiowsgi_workers_resident_bytes", "")] > 2 * 5 * 2**20
    assert got[("aiowsgi_uptime_seconds", "")] > 0
    version = [labels for name, labels in got if name == "aiowsgi_build_info"][0]
    assert version.startswith('version="0.1.0",python="')
    # every client has left: the workers close their side as they notice
    assert wait_for(lambda: value(metrics, "aiowsgi_connections") == 0)
    assert value(metrics, "aiowsgi_requests_in_flight") == 0


def test_the_duration_histogram_places_slow_requests(served):
    assert get_json(served.address, "/sleep?0.3")["path"] == "/sleep"
    got = samples(served.metrics_address)
    assert got[("aiowsgi_request_duration_seconds_bucket", 'le="0.25"')] == 0
    assert got[("aiowsgi_request_duration_seconds_bucket", 'le="0.5"')] == 1
    assert got[("aiowsgi_request_duration_seconds_sum", "")] >= 0.3


def test_open_connections_and_requests_in_flight(served):
    metrics = served.metrics_address
    busy = threading.Thread(target=lambda: get(served.address, "/sleep?1.5", timeout=10))
    busy.start()
    idle = []
    try:
        assert wait_for(lambda: value(metrics, "aiowsgi_requests_in_flight") == 1)
        idle = [served.client() for _ in range(3)]  # (after: the busy worker accepts none)
        for c in idle:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response().status == 200
        assert value(metrics, "aiowsgi_connections") == 4
    finally:
        busy.join(10)
        for c in idle:
            c.close()
    assert wait_for(lambda: value(metrics, "aiowsgi_connections") == 0)
    assert value(metrics, "aiowsgi_requests_in_flight") == 0


def test_a_request_cut_by_its_client_leaves_no_request_in_flight(served):
    metrics = served.metrics_address
    with served.client() as c:
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\nabc")
        assert wait_for(lambda: value(metrics, "aiowsgi_requests_in_flight") == 1)
    assert wait_for(lambda: value(metrics, "aiowsgi_requests_in_flight") == 0)
    assert value(metrics, "aiowsgi_connections") == 0


def test_counters_of_a_dead_worker_are_kept_and_its_restart_counted(served):
    metrics = served.metrics_address
    for _ in range(4):
        get(served.address, "/")
    before = value(metrics, "aiowsgi_requests_total", 'status="2xx",method="GET"')
    assert before == 4
    victim = served.children()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: value(metrics, "aiowsgi_worker_restarts_total",
                                  'reason="died"') == 1)
    assert wait_for(lambda: len(served.children()) == 2 and victim not in served.children())
    assert value(metrics, "aiowsgi_requests_total", 'status="2xx",method="GET"') == before
    get(served.address, "/")
    assert value(metrics, "aiowsgi_requests_total", 'status="2xx",method="GET"') == before + 1
    served.signal(signal.SIGHUP)
    assert wait_for(lambda: value(metrics, "aiowsgi_worker_restarts_total",
                                  'reason="reload"') == 2, timeout=20)


def test_the_endpoint_answers_only_get_metrics(served):
    metrics = served.metrics_address
    assert scrape(metrics, "/").status == 404
    assert get(metrics, "/metrics", method="POST", body=b"").status == 405
    head = get(metrics, "/metrics", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert answer(b"nonsense\r\n\r\n", lambda: b"").startswith(b"HTTP/1.1 400 ")


def test_a_slow_scraper_does_not_stall_the_master(served):
    """A client that connects and sends nothing holds no one up; the master still serves
    scrapes, and still replaces workers."""
    host, port = served.metrics_address.rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    try:
        assert value(served.metrics_address, "aiowsgi_workers") == 2
        victim = served.children()[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(served.children()) == 2
                        and victim not in served.children())
    finally:
        silent.close()


def test_metrics_on_a_unix_socket_with_one_worker(start, tmp_path):
    write_cli_app(tmp_path)
    path = str(tmp_path / "metrics.sock")
    server = start.cli("-b", "127.0.0.1:0", "--metrics-bind", "unix:" + path, "app:app")
    get(server.address, "/")
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(scaled(10))
    sock.connect(path)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    assert b'aiowsgi_requests_total{status="2xx",method="GET"} 1\n' in data


def test_static_files_are_counted_like_the_apps_answers(start, tmp_path):
    """--static answers never reach Python, yet they are requests: counted by status class and
    method, their bytes and durations included, and none left in flight."""
    write_cli_app(tmp_path)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "a.txt").write_bytes(b"x" * 1000)
    metrics_port = free_port()
    metrics = "127.0.0.1:%d" % metrics_port
    server = start.cli("-b", "127.0.0.1:0", "--metrics-bind", metrics, "--static",
                       "/s=public", "app:app")
    first = get(server.address, "/s/a.txt")
    assert first.status == 200 and len(first.body) == 1000
    assert get(server.address, "/s/a.txt", method="HEAD").status == 200
    assert get(server.address, "/s/missing.txt").status == 404
    assert get(server.address, "/s/a.txt",
               headers=[("If-None-Match", first.header("etag"))]).status == 304
    assert get(server.address, "/").status == 200  # the app's, for comparison
    got = samples(metrics)
    assert got[("aiowsgi_requests_total", 'status="2xx",method="GET"')] == 2
    assert got[("aiowsgi_requests_total", 'status="2xx",method="HEAD"')] == 1
    assert got[("aiowsgi_requests_total", 'status="4xx",method="GET"')] == 1
    assert got[("aiowsgi_requests_total", 'status="3xx",method="GET"')] == 1
    assert got[("aiowsgi_request_duration_seconds_count", "")] == 5
    assert got[("aiowsgi_response_body_bytes_total", "")] >= 1000
    assert got[("aiowsgi_requests_in_flight", "")] == 0


# -- a real Prometheus -----------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def prometheus_query(port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=scaled(10)) as resp:
        data = json.load(resp)
    assert data["status"] == "success", data
    return data["data"]["result"]


def prometheus_ready(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % port, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.mark.skipif(not os.path.exists(PROMETHEUS),
                    reason="Debian's prometheus is not installed (tools/sysdeps.sh test)")
def test_a_real_prometheus_scrapes_the_metrics(start, served, tmp_path):
    for _ in range(5):
        get(served.address, "/")
    get(served.address, "/fail")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: aiowsgi\n    static_configs:\n"
        "      - targets: ['%s']\n" % served.metrics_address)
    start.command([PROMETHEUS, "--config.file", str(tmp_path / "prometheus.yml"),
                   "--storage.tsdb.path", str(tmp_path / "data"),
                   "--web.listen-address", "127.0.0.1:%d" % port],
                  ready=lambda: prometheus_ready(port))

    def scraped():
        up = prometheus_query(port, 'up{job="aiowsgi"}')
        return up and up[0]["value"][1] == "1"

    assert wait_for(scraped, timeout=30)
    ok = prometheus_query(port, 'aiowsgi_requests_total{status="2xx",method="GET"}')
    assert [float(s["value"][1]) for s in ok] == [5.0]
    errors = prometheus_query(port, 'sum(aiowsgi_requests_total{status="5xx"})')
    assert float(errors[0]["value"][1]) == 1.0
    count = prometheus_query(port, "aiowsgi_request_duration_seconds_count")
    assert float(count[0]["value"][1]) == 6.0
    quantile = prometheus_query(
        port, "histogram_quantile(0.5, aiowsgi_request_duration_seconds_bucket)")
    assert 0 <= float(quantile[0]["value"][1]) <= 0.01
    workers = prometheus_query(port, "aiowsgi_workers")
    assert float(workers[0]["value"][1]) == 2.0
