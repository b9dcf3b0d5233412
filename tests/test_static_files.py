"""Static files served by the C core (``--static URL_PREFIX=DIRECTORY``, SPEC section 7).

Every test talks over real sockets to a real server process (the router of
tests/support/apps.py behind it, through tests/support/server.py) serving a directory the
module builds: files of every common type, a directory with
an index and one without, precompressed siblings, hashed names, and symlinks and special files
that must never lead anywhere.  The router records every call it gets, so a test can tell that
a static request never reached Python.  Where it matters, the tests run against both ways of
resolving paths beneath the directory: openat2(RESOLVE_BENEATH), and the fallback for kernels
without it (``AIOWSGI_STATIC_NO_OPENAT2=1``).
"""

import email.utils
import gzip
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.support.client import RawClient, build_request, get
from tests.support.server import ROUTER, run_command
from tests.support.waits import wait_for

MB = 1024 * 1024
SECRET = b"the secret next to the site: never served\n"
APP_JS = b"console.log('the identity representation');\n" * 40
FALLBACK = {"AIOWSGI_STATIC_NO_OPENAT2": "1"}

TYPES = {  # file name -> Content-Type: the original requirements first
    "a.html": "text/html; charset=utf-8",
    "a.css": "text/css; charset=utf-8",
    "a.js": "text/javascript; charset=utf-8",
    "a.jpg": "image/jpeg",
    "a.jpeg": "image/jpeg",
    "a.png": "image/png",
    "a.gif": "image/gif",
    "a.swf": "application/x-shockwave-flash",
    "a.htm": "text/html; charset=utf-8",
    "a.mjs": "text/javascript; charset=utf-8",
    "a.json": "application/json",
    "a.svg": "image/svg+xml",
    "a.webp": "image/webp",
    "a.ico": "image/vnd.microsoft.icon",
    "a.woff2": "font/woff2",
    "a.wasm": "application/wasm",
    "a.txt": "text/plain; charset=utf-8",
    "a.mp4": "video/mp4",
    "a.pdf": "application/pdf",
    "UPPER.PNG": "image/png",
    "a.tar.gz": "application/gzip",
    "no_extension": "application/octet-stream",
    "a.unknown-ext": "application/octet-stream",
}


def mime_types_entry():
    """An extension only /etc/mime.types knows (not in the built-in table), and its type."""
    try:
        with open("/etc/mime.types") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split("#")[0].split()
        if len(parts) >= 2 and parts[0] == "application/vnd.oasis.opendocument.text":
            return parts[1], parts[0]
    return None


def build_site(root):
    """The directory served at /static, and a secret file next to it."""
    (root / "secret.txt").write_bytes(SECRET)
    site = root / "site"
    for sub in ("docs", "empty", "types", "deep/er"):
        (site / sub).mkdir(parents=True, exist_ok=True)
    (site / "app.css").write_bytes(b"body { color: red }\n")
    (site / "index.html").write_bytes(b"<h1>root index</h1>\n")
    (site / "docs" / "index.html").write_bytes(b"<h1>docs index</h1>\n")
    (site / "docs" / "guide.txt").write_bytes(b"a guide\n")
    (site / "empty" / "not-listed.txt").write_bytes(b"hidden from listings\n")
    (site / "deep" / "er" / "file.txt").write_bytes(b"deep file\n")
    (site / "with space.txt").write_bytes(b"space\n")
    (site / "caf\u00e9.txt").write_bytes(b"utf-8 name\n")
    (site / "empty.txt").write_bytes(b"")
    big = bytearray()
    seed = b"static"
    while len(big) < MB:
        seed = hashlib.sha256(seed).digest()
        big += seed
    (site / "big.bin").write_bytes(bytes(big[:MB]))
    (site / "app.js").write_bytes(APP_JS)
    (site / "app.js.gz").write_bytes(gzip.compress(APP_JS, mtime=0))
    (site / "app.js.br").write_bytes(b"pretend brotli of app.js")
    (site / "app.js.zst").write_bytes(b"pretend zstd of app.js, longer")
    (site / "only-gz.js").write_bytes(APP_JS)
    (site / "only-gz.js.gz").write_bytes(gzip.compress(APP_JS, mtime=0))
    for name in ("app.3f2a1b9c.js", "index-B7qzK3xA.js", "styles.0123456789abcdef.css",
                 "icon-1024x1024.png", "backup.20240101.tar", "logo.png"):
        (site / name).write_bytes(b"named " + name.encode())
    for name in TYPES:
        (site / "types" / name).write_bytes(b"typed")
    extra = mime_types_entry()
    if extra:
        (site / "types" / ("a." + extra[0])).write_bytes(b"typed")
    os.symlink("app.css", site / "inner-link.css")
    os.symlink(str(site / "app.css"), site / "absolute-inner-link.css")
    os.symlink("../secret.txt", site / "escape.txt")
    os.symlink(str(root / "secret.txt"), site / "escape-absolute.txt")
    os.symlink("..", site / "escape-dir")
    os.symlink("/etc", site / "etc")
    os.mkfifo(site / "fifo")
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build_site(tmp_path_factory.mktemp("static"))


@pytest.fixture
def servers(shared_server, site):
    """``servers(env=None, **options)``: the router with /static mounted (unless ``static``
    says otherwise), kept for the module."""
    def get_server(env=None, **options):
        options.setdefault("static", "/static=%s" % site)
        return shared_server(ROUTER, env=env, **options)

    return get_server


@pytest.fixture
def server(servers):
    return servers()


@pytest.fixture(params=["openat2", "fallback"])
def any_resolver(request, servers):
    return servers(env=FALLBACK if request.param == "fallback" else None)


def fetch(srv, target, headers=(), method="GET", version="HTTP/1.1"):
    return get(srv.address, target, headers, method=method, version=version)


def router_calls(srv):
    return [row[2:] for row in srv.events() if row[:2] == ["router", "call"]]


def http_date(path):
    return email.utils.formatdate(int(os.stat(path).st_mtime), usegmt=True)


# -- a file, its headers, and what never reaches the app -----------------------------------

def test_a_file_is_answered_with_its_type_length_validators_and_caching(server, site):
    r = fetch(server, "/static/app.css")
    assert r.status == 200 and r.body == b"body { color: red }\n"
    assert r.header("Content-Type") == "text/css; charset=utf-8"
    assert r.header("Content-Length") == str(len(r.body))
    assert r.header("Last-Modified") == http_date(site / "app.css")
    assert r.header("ETag").startswith('"') and r.header("ETag").endswith('"')
    assert r.header("Accept-Ranges") == "bytes"
    assert r.header("Cache-Control") == "public, max-age=60"
    assert r.header("Server") == "aiowsgi"
    assert email.utils.parsedate_to_datetime(r.header("Date"))
    assert r.header("Connection") == "keep-alive"
    assert not r.has_header("Vary") and not r.has_header("Content-Encoding")


def test_head_gets_the_headers_of_get_and_no_body(server):
    got, head = fetch(server, "/static/app.css"), fetch(server, "/static/app.css", method="HEAD")
    assert head.status == 200 and head.body == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Last-Modified", "Cache-Control"):
        assert head.header(name) == got.header(name), name
    with RawClient(server.address) as c:  # nothing follows the head on the wire
        c.request("HEAD", "/static/big.bin")
        c.request("GET", "/static/app.css")
        assert c.read_response("HEAD").header("Content-Length") == str(MB)
        assert c.read_response().body == b"body { color: red }\n"


def test_static_requests_never_reach_the_app_and_others_do(server):
    before = len(router_calls(server))
    for target in ("/static/app.css", "/static/nope", "/static/docs", "/static/../x",
                   "/static/app.css?id=q"):
        fetch(server, target)
    fetch(server, "/static/app.css", method="POST")
    assert router_calls(server)[before:] == []
    for target in ("/hello/", "/staticfile", "/stati", "/", "/hello/static/app.css"):
        r = fetch(server, target)
        assert r.status in (200, 404) and r.header("Connection") is None, target
    assert wait_for(lambda: len(router_calls(server)) == before + 5), router_calls(server)


def test_a_prefix_matches_whole_segments_only(server):
    r = fetch(server, "/staticapp.css")
    assert r.status == 404 and r.body.startswith(b"no app")  # the router's own 404


def test_the_query_string_is_ignored(server):
    plain = fetch(server, "/static/app.css")
    for target in ("/static/app.css?v=3", "/static/app.css?", "/static/app.css?a=%2e%2e/x"):
        r = fetch(server, target)
        assert (r.status, r.body, r.header("ETag")) == (200, plain.body, plain.header("ETag"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_get_405_with_allow(server, method):
    r = fetch(server, "/static/app.css", method=method)
    assert r.status == 405 and r.header("Allow") == "GET, HEAD"
    assert r.body == b"Method Not Allowed\n"


def test_a_405_to_a_request_with_a_body_closes_the_connection(server):
    with RawClient(server.address) as c:
        c.request("POST", "/static/app.css", body=b"x" * 1000)
        r = c.read_response()
        assert r.status == 405 and r.header("Connection") == "close"
        assert c.peer_closed()


@pytest.mark.parametrize("target, headers, status", [
    ("/static/app.css", (), 200),
    ("/static/big.bin", [("Range", "bytes=0-9")], 206),
    ("/static/docs", (), 301),
    ("/static/app.css", [("If-None-Match", "*")], 304),
    ("/static/escape.txt", (), 403),
    ("/static/nope", (), 404),
    ("/static/app.css", [("If-Match", '"other"')], 412),
    ("/static/big.bin", [("Range", "bytes=%d-" % MB)], 416),
], ids=lambda v: str(v) if isinstance(v, int) else None)
def test_server_date_and_connection_on_every_answer(server, target, headers, status):
    r = fetch(server, target, headers)
    assert r.status == status
    assert r.header("Server") == "aiowsgi"
    assert email.utils.parsedate_to_datetime(r.header("Date"))
    assert r.header("Connection") == "keep-alive"
    if status != 304:
        assert r.header("Content-Length") == str(len(r.body))


def test_http10_clients_get_the_connection_they_asked_for(server):
    with RawClient(server.address) as c:
        c.request("GET", "/static/app.css", version="HTTP/1.0")
        r = c.read_response()
        assert r.status == 200 and r.header("Connection") == "close"
        assert c.peer_closed()
    with RawClient(server.address) as c:
        c.request("GET", "/static/app.css", [("Connection", "keep-alive")], version="HTTP/1.0")
        assert c.read_response().header("Connection") == "keep-alive"
        c.request("GET", "/static/docs/", version="HTTP/1.0")
        assert c.read_response().body == b"<h1>docs index</h1>\n"


def test_connection_close_is_honoured(server):
    with RawClient(server.address) as c:
        c.request("GET", "/static/big.bin", [("Connection", "close")])
        r = c.read_response()
        assert (r.status, len(r.body), r.header("Connection")) == (200, MB, "close")
        assert c.peer_closed()


def test_pipelined_static_and_app_requests_are_answered_in_order(server, site):
    big = (site / "big.bin").read_bytes()
    with RawClient(server.address) as c:
        c.send(build_request("GET", "/static/big.bin") + build_request("GET", "/hello/")
               + build_request("HEAD", "/static/app.css") + build_request("GET", "/static/nope")
               + build_request("GET", "/static/big.bin", [("Range", "bytes=-5")])
               + build_request("GET", "/static/docs/"))
        assert c.read_response().body == big
        assert c.read_response().body == b"Hello, world!\n"
        assert c.read_response("HEAD").status == 200
        assert c.read_response().status == 404
        assert c.read_response().body == big[-5:]
        assert c.read_response().body == b"<h1>docs index</h1>\n"


# -- directories ---------------------------------------------------------------------------

def test_a_directory_with_a_slash_is_its_index_html(server):
    r = fetch(server, "/static/docs/")
    assert r.status == 200 and r.body == b"<h1>docs index</h1>\n"
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert fetch(server, "/static/").body == b"<h1>root index</h1>\n"


@pytest.mark.parametrize("target, location", [
    ("/static/docs", "/static/docs/"),
    ("/static/docs?page=2&x=%2F", "/static/docs/?page=2&x=%2F"),
    ("/static", "/static/"),
    ("/static/deep/er", "/static/deep/er/"),
    ("/static//docs", "/static//docs/"),
])
def test_a_directory_without_its_slash_is_redirected_to_it(server, target, location):
    r = fetch(server, target)
    assert r.status == 301 and r.header("Location") == location


def test_a_redirect_never_names_another_host(tmp_path, servers, site):
    srv = servers(static="/=%s" % site)
    r = fetch(srv, "//docs")
    assert r.status == 301 and r.header("Location") == "/docs/"
    assert fetch(srv, "/docs/").body == b"<h1>docs index</h1>\n"


def test_a_directory_without_an_index_is_404_never_a_listing(server):
    for target in ("/static/empty/", "/static/deep/"):
        r = fetch(server, target)
        assert r.status == 404 and b"not-listed" not in r.body and b"er" not in r.body


def test_a_file_path_with_a_trailing_slash_is_404(server):
    for target in ("/static/app.css/", "/static/docs/guide.txt/", "/static/app.css/x"):
        assert fetch(server, target).status == 404, target


# -- types and names -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(TYPES))
def test_content_type_of_the_common_web_types(server, name):
    r = fetch(server, "/static/types/" + name)
    assert r.status == 200 and r.header("Content-Type") == TYPES[name]


def test_types_not_built_in_come_from_etc_mime_types(server):
    extra = mime_types_entry()
    if not extra:
        pytest.skip("no /etc/mime.types with application/vnd.oasis.opendocument.text")
    r = fetch(server, "/static/types/a." + extra[0])
    assert r.status == 200 and r.header("Content-Type") == extra[1]


@pytest.mark.parametrize("target, body", [
    ("/static/with%20space.txt", b"space\n"),
    ("/static/caf%C3%A9.txt", b"utf-8 name\n"),
    ("/static/caf%c3%a9.txt", b"utf-8 name\n"),
    ("/static/%61pp.css", b"body { color: red }\n"),
    ("/st%61tic/app.css", b"body { color: red }\n"),
    ("/static/deep%2Fer%2Ffile.txt", b"deep file\n"),
    ("http://localhost/static/app.css", b"body { color: red }\n"),
])
def test_percent_encoded_paths_are_decoded_as_path_info_is(server, target, body):
    r = fetch(server, target)
    assert (r.status, r.body) == (200, body)


def test_an_empty_file(server):
    r = fetch(server, "/static/empty.txt")
    assert (r.status, r.body, r.header("Content-Length")) == (200, b"", "0")


def test_a_very_long_path_is_404_not_an_error(server):
    r = fetch(server, "/static/" + "a/" * 3000 + "x.css")
    assert r.status == 404


# -- never outside the directory -----------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/static/../secret.txt",
    "/static/docs/../../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/.%2e/secret.txt",
    "/static/docs/%2e%2e/%2e%2e/secret.txt",
    "/static/./app.css",
    "/static/app.css%00.png",
    "/static/%00",
    "/static/..%5csecret.txt",
    "/static/docs%5c..%5c..%5csecret.txt",
    "/static/escape.txt",
    "/static/escape-absolute.txt",
    "/static/escape-dir/secret.txt",
    "/static/etc/passwd",
    "/static/etc/hostname",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "http://localhost/static/../secret.txt",
])
def test_nothing_outside_the_directory_is_ever_served(any_resolver, target):
    before = len(router_calls(any_resolver))
    r = fetch(any_resolver, target)
    assert r.status in (403, 404), (target, r)
    assert SECRET not in r.body and b"root:" not in r.body
    assert len(router_calls(any_resolver)) == before


def test_refusals_are_403_and_missing_files_404(any_resolver):
    for target in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/a%00b",
                   "/static/a%5cb", "/static/escape.txt", "/static/escape-dir/secret.txt"):
        assert fetch(any_resolver, target).status == 403, target
    for target in ("/static/nope.css", "/static//nope/passwd", "/static/docs/nope/"):
        assert fetch(any_resolver, target).status == 404, target


def test_a_relative_symlink_inside_the_directory_is_followed(any_resolver):
    r = fetch(any_resolver, "/static/inner-link.css")
    assert (r.status, r.body) == (200, b"body { color: red }\n")


@pytest.mark.parametrize("target", ["/static/absolute-inner-link.css",
                                    "/static/escape-dir/site/app.css"])
def test_a_symlink_out_and_back_in_is_refused_by_openat2_and_followed_by_the_fallback(
        servers, target):
    # openat2 refuses any symlink that is absolute or climbs above the directory; the fallback
    # looks only at where the path ends, which is inside
    r = fetch(servers(env=FALLBACK), target)
    assert (r.status, r.body) == (200, b"body { color: red }\n")
    if fetch(servers(), target).status == 200:
        pytest.skip("the server cannot use openat2 here (an old kernel, a seccomp filter, or "
                    "valgrind, which does not know the call): it resolves with the fallback")
    assert fetch(servers(), target).status == 403


def test_a_fifo_is_refused_without_blocking_the_server(any_resolver):
    start = time.monotonic()
    assert fetch(any_resolver, "/static/fifo").status == 403
    assert fetch(any_resolver, "/static/app.css").status == 200
    assert time.monotonic() - start < 2


# -- conditional requests ------------------------------------------------------------------

def test_if_none_match_with_the_etag_is_304(server):
    r = fetch(server, "/static/app.css")
    etag = r.header("ETag")
    for value in (etag, "W/" + etag, '"other", ' + etag, "*"):
        n = fetch(server, "/static/app.css", [("If-None-Match", value)])
        assert (n.status, n.body) == (304, b""), value
        assert n.header("ETag") == etag and n.header("Cache-Control") == "public, max-age=60"
        assert not n.has_header("Content-Length") and not n.has_header("Content-Type")
    assert fetch(server, "/static/app.css", [("If-None-Match", '"other"')]).status == 200


def test_if_modified_since_the_last_modification_is_304(server, site):
    mtime = int(os.stat(site / "app.css").st_mtime)
    same = email.utils.formatdate(mtime, usegmt=True)
    for value in (same, email.utils.formatdate(mtime + 3600, usegmt=True),
                  time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(mtime)),
                  time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(mtime))):
        assert fetch(server, "/static/app.css", [("If-Modified-Since", value)]).status == 304, \
            value
    for value in (email.utils.formatdate(mtime - 1, usegmt=True), "yesterday", ""):
        assert fetch(server, "/static/app.css", [("If-Modified-Since", value)]).status == 200


def test_if_none_match_wins_over_if_modified_since(server, site):
    same = http_date(site / "app.css")
    r = fetch(server, "/static/app.css", [("If-None-Match", '"other"'),
                                          ("If-Modified-Since", same)])
    assert r.status == 200


def test_if_match_and_if_unmodified_since_give_412(server, site):
    etag = fetch(server, "/static/app.css").header("ETag")
    mtime = int(os.stat(site / "app.css").st_mtime)
    assert fetch(server, "/static/app.css", [("If-Match", '"other"')]).status == 412
    assert fetch(server, "/static/app.css", [("If-Match", "W/" + etag)]).status == 412
    assert fetch(server, "/static/app.css", [("If-Match", etag)]).status == 200
    old = email.utils.formatdate(mtime - 10, usegmt=True)
    assert fetch(server, "/static/app.css", [("If-Unmodified-Since", old)]).status == 412
    new = email.utils.formatdate(mtime + 10, usegmt=True)
    assert fetch(server, "/static/app.css", [("If-Unmodified-Since", new)]).status == 200


# -- ranges --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, MB - 1),
    ("bytes=-100", MB - 100, MB - 1),
    ("bytes=0-0", 0, 0),
    ("bytes=%d-%d" % (MB - 10, 10 * MB), MB - 10, MB - 1),
    ("bytes=-%d" % (2 * MB), 0, MB - 1),
    ("Bytes=5-9", 5, 9),
])
def test_one_range_is_206_with_its_bytes(server, site, spec, first, last):
    whole = (site / "big.bin").read_bytes()
    r = fetch(server, "/static/big.bin", [("Range", spec)])
    assert r.status == 206 and r.body == whole[first:last + 1]
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (first, last, MB)
    assert r.header("Content-Length") == str(last - first + 1)
    assert r.header("Accept-Ranges") == "bytes"


@pytest.mark.parametrize("spec", ["bytes=%d-" % MB, "bytes=%d-%d" % (2 * MB, 3 * MB),
                                  "bytes=-0"])
def test_a_range_past_the_end_is_416(server, spec):
    r = fetch(server, "/static/big.bin", [("Range", spec)])
    assert r.status == 416 and r.header("Content-Range") == "bytes */%d" % MB


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "bytes=abc", "items=0-1", "bytes=5-1",
                                  "bytes=-", "bytes=99999999999999999999-"])
def test_several_or_malformed_ranges_get_the_whole_file(server, spec):
    r = fetch(server, "/static/big.bin", [("Range", spec)])
    assert r.status == 200 and len(r.body) == MB


def test_if_range_sends_the_range_only_of_the_version_it_names(server, site):
    etag = fetch(server, "/static/big.bin").header("ETag")
    lm = http_date(site / "big.bin")
    for value, status in ((etag, 206), ('"other"', 200), ("W/" + etag, 200), (lm, 206),
                          (email.utils.formatdate(0, usegmt=True), 200)):
        r = fetch(server, "/static/big.bin", [("Range", "bytes=0-9"), ("If-Range", value)])
        assert r.status == status, value


def test_range_of_an_empty_file_is_416(server):
    assert fetch(server, "/static/empty.txt", [("Range", "bytes=0-")]).status == 416


def test_head_ignores_range(server):
    r = fetch(server, "/static/big.bin", [("Range", "bytes=0-9")], method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == str(MB)


def test_curl_resumes_a_download(server, site, tmp_path):
    out = tmp_path / "part.bin"
    whole = (site / "big.bin").read_bytes()
    out.write_bytes(whole[:300000])
    subprocess.run(["curl", "-sS", "-C", "-", "-o", str(out), server.url("/static/big.bin")],
                   check=True, timeout=30)
    assert out.read_bytes() == whole


# -- precompressed siblings ----------------------------------------------------------------

@pytest.mark.parametrize("accept, coding, suffix", [
    ("gzip", "gzip", ".gz"),
    ("br", "br", ".br"),
    ("zstd", "zstd", ".zst"),
    ("gzip, deflate, br, zstd", "br", ".br"),
    ("gzip, zstd", "zstd", ".zst"),
    ("br;q=0, gzip", "gzip", ".gz"),
    ("*", "br", ".br"),
    ("br;q=0, *", "zstd", ".zst"),
    ("x-gzip", "gzip", ".gz"),
    ("GZIP;q=0.5", "gzip", ".gz"),
    ("identity", None, ""),
    ("gzip;q=0", None, ""),
    ("*;q=0", None, ""),
    (None, None, ""),
])
def test_a_precompressed_sibling_is_sent_when_accepted(server, site, accept, coding, suffix):
    headers = [("Accept-Encoding", accept)] if accept is not None else []
    r = fetch(server, "/static/app.js", headers)
    assert r.status == 200 and r.body == (site / ("app.js" + suffix)).read_bytes()
    assert r.header("Content-Encoding") == coding
    assert r.header("Content-Type") == "text/javascript; charset=utf-8"
    assert r.header("Vary") == "Accept-Encoding"


def test_each_representation_has_its_own_etag(server):
    identity = fetch(server, "/static/app.js")
    gz = fetch(server, "/static/app.js", [("Accept-Encoding", "gzip")])
    assert identity.header("ETag") != gz.header("ETag")
    r = fetch(server, "/static/app.js", [("Accept-Encoding", "gzip"),
                                         ("If-None-Match", gz.header("ETag"))])
    assert r.status == 304 and r.header("Vary") == "Accept-Encoding"
    r = fetch(server, "/static/app.js", [("If-None-Match", gz.header("ETag"))])
    assert r.status == 200


def test_a_range_applies_to_the_representation_sent(server, site):
    gz = (site / "app.js.gz").read_bytes()
    r = fetch(server, "/static/app.js", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == gz[:10]
    assert r.header("Content-Range") == "bytes 0-9/%d" % len(gz)


def test_curl_decompresses_what_it_asked_for(server):
    out = subprocess.run(["curl", "-sS", "-H", "Accept-Encoding: gzip", "--compressed",
                          "-D", "-", server.url("/static/only-gz.js")],
                         check=True, capture_output=True, timeout=30).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and body == APP_JS


# -- Cache-Control -------------------------------------------------------------------------

@pytest.mark.parametrize("name, hashed", [
    ("app.3f2a1b9c.js", True),
    ("index-B7qzK3xA.js", True),
    ("styles.0123456789abcdef.css", True),
    ("icon-1024x1024.png", False),
    ("backup.20240101.tar", False),
    ("logo.png", False),
    ("app.css", False),
])
def test_names_with_a_content_hash_are_cached_for_a_year(server, name, hashed):
    r = fetch(server, "/static/" + name)
    expected = "public, max-age=31536000, immutable" if hashed else "public, max-age=60"
    assert r.status == 200 and r.header("Cache-Control") == expected


def test_static_max_age_sets_the_short_max_age(servers, site):
    srv = servers(static_max_age=3600)
    assert fetch(srv, "/static/app.css").header("Cache-Control") == "public, max-age=3600"
    assert fetch(srv, "/static/app.3f2a1b9c.js").header("Cache-Control") == \
        "public, max-age=31536000, immutable"


# -- the cache of descriptors and stat results ----------------------------------------------

def test_a_changed_a_new_and_a_removed_file_are_seen_soon(tmp_path, servers):
    site = tmp_path / "live"
    site.mkdir()
    (site / "f.txt").write_bytes(b"first version\n")
    srv = servers(static="/live=%s" % site)
    assert fetch(srv, "/live/f.txt").body == b"first version\n"
    assert fetch(srv, "/live/g.txt").status == 404
    tmp = site / "f.txt.new"
    tmp.write_bytes(b"second, longer version\n")
    os.rename(tmp, site / "f.txt")  # how deploys replace files
    (site / "g.txt").write_bytes(b"new file\n")
    assert wait_for(lambda: fetch(srv, "/live/f.txt").body == b"second, longer version\n", 5)
    assert wait_for(lambda: fetch(srv, "/live/g.txt").status == 200, 5)
    os.unlink(site / "g.txt")
    assert wait_for(lambda: fetch(srv, "/live/g.txt").status == 404, 5)


def test_a_replaced_directory_is_followed(tmp_path, servers):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "f.txt").write_bytes(b"release 1\n")
    (tmp_path / "v2" / "f.txt").write_bytes(b"release 2\n")
    os.symlink("v1", tmp_path / "current")
    srv = servers(static="/rel=%s" % (tmp_path / "current"))
    assert fetch(srv, "/rel/f.txt").body == b"release 1\n"
    os.symlink("v2", tmp_path / "next")
    os.rename(tmp_path / "next", tmp_path / "current")  # the usual atomic switch
    assert wait_for(lambda: fetch(srv, "/rel/f.txt").body == b"release 2\n", 5)


def strace(pid, seconds_or_action, calls="sendfile,read,pread64,openat,openat2"):
    """The system calls of process pid (its threads too) while action runs."""
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    out = "/tmp/aiowsgi-strace-%d-%d" % (pid, time.monotonic_ns())
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-e", "trace=" + calls, "-o", out,
                               "-p", str(pid)], stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)  # attached
        if tracer.poll() is not None:
            pytest.skip("strace cannot attach: %s" % tracer.stderr.read().decode())
        seconds_or_action()
        time.sleep(0.2)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
    with open(out) as f:
        text = f.read()
    os.unlink(out)
    return text


def test_bodies_go_out_with_sendfile_and_files_stay_open_between_requests(servers, site):
    srv = servers()
    fetch(srv, "/static/big.bin")  # now in the cache

    def two_downloads():
        for _ in range(2):
            assert len(fetch(srv, "/static/big.bin").body) == MB

    calls = strace(srv.pid, two_downloads)
    assert "sendfile(" in calls
    opens = [line for line in calls.splitlines() if "open" in line]
    assert not [line for line in opens if "big.bin" in line]  # the descriptor was cached
    reads = [line for line in calls.splitlines() if " read(" in line or "pread64(" in line]
    assert all("= %d" % MB not in line for line in reads)  # not read into memory


def test_a_slow_reader_of_a_large_file_blocks_no_one(tmp_path, servers):
    site = tmp_path / "large"
    site.mkdir()
    with open(site / "large.bin", "wb") as f:
        f.truncate(64 * MB)
    srv = servers(static="/large=%s" % site)
    slow = RawClient(srv.address, rcvbuf=65536)
    slow.request("GET", "/large/large.bin")
    head = slow.read_head()
    assert head.status == 200 and head.header("Content-Length") == str(64 * MB)
    for _ in range(5):
        start = time.monotonic()
        assert fetch(srv, "/large/large.bin", [("Range", "bytes=0-3")]).body == b"\0" * 4
        assert fetch(srv, "/hello/").status == 200
        assert time.monotonic() - start < 1
    slow.close()


def test_a_client_leaving_mid_file_leaks_no_descriptor(servers):
    srv = servers()
    fetch(srv, "/static/big.bin")
    fetch(srv, "/static/app.css")
    baseline = srv.open_fds()
    for _ in range(20):
        c = RawClient(srv.address, rcvbuf=4096)
        c.request("GET", "/static/big.bin")
        c.read_exact(1000)
        c.close()
    assert wait_for(lambda: srv.open_fds() <= baseline, 5), (srv.open_fds(), baseline)


# -- access log, options, the command line, bottle ------------------------------------------

def test_static_requests_are_in_the_access_log(servers):
    srv = servers(record_access=True)
    for target, headers in (("/static/app.css", ()), ("/static/nope", ()),
                            ("/static/app.css", [("If-None-Match", "*")]),
                            ("/static/big.bin", [("Range", "bytes=0-9")])):
        fetch(srv, target, headers)
    fetch(srv, "/static/app.css", method="HEAD")
    expected = [["200", "20", "GET", "/static/app.css"], ["404", "10", "GET", "/static/nope"],
                ["304", "0", "GET", "/static/app.css"], ["206", "10", "GET", "/static/big.bin"],
                ["200", "0", "HEAD", "/static/app.css"]]
    assert wait_for(lambda: srv.events("access")[-5:] == expected, 5), srv.events("access")


def test_the_longest_prefix_wins(tmp_path, servers, site):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "app.css").write_bytes(b"inner\n")
    srv = servers(static="/static=%s,/static/docs=%s" % (site, inner))
    assert fetch(srv, "/static/docs/app.css").body == b"inner\n"
    assert fetch(srv, "/static/app.css").body == b"body { color: red }\n"
    assert fetch(srv, "/static/docs/guide.txt").status == 404


def test_the_command_line_mounts_repeated_static_options(start, tmp_path, site):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "o.txt").write_bytes(b"other mount\n")
    (tmp_path / "app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'app ' + environ['PATH_INFO'].encode()]\n")
    srv = start.cli("-b", "127.0.0.1:0", "--static", "/s=%s" % site, "--static", "/o/=other",
                    "--static-max-age", "5", "app:app", cwd=tmp_path)
    r = srv.get("/s/app.css")
    assert r.status == 200 and r.header("Cache-Control") == "public, max-age=5"
    assert srv.get("/o/o.txt").body == b"other mount\n"
    assert srv.get("/x").body == b"app /x"


@pytest.mark.parametrize("value, message", [
    ("/static", "expected URL_PREFIX=DIRECTORY"),
    ("static/=.", "the prefix must be a URL path"),
    ("/a/../b=.", "the prefix must be a URL path"),
    ("/s=/nonexistent-dir-for-aiowsgi", "is not a directory"),
])
def test_a_bad_static_option_is_a_usage_error(tmp_path, value, message):
    result = run_command([sys.executable, "-m", "aiowsgi", "--static", value, "app:app"],
                         cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_the_python_api_takes_a_dict(start, site):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [b"app"]

    srv = start.in_thread(app, static={"/assets/": site})
    assert srv.get("/assets/app.css").body == b"body { color: red }\n"
    assert srv.get("/assets").header("Location") == "/assets/"
    assert srv.get("/other").body == b"app"
