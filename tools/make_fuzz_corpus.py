"""Writes the seed corpus of csrc/fuzz/fuzz_conn.c to tests/fuzz_corpus/ (run from the repo
root). Each file: a flags byte (bit 0 streaming server, bit 1 half-close), a write-size byte
(0: all at once), then the client's bytes.  fuzz_parser and fuzz_static read the same files
their own way (see their opening comments)."""

import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz_corpus")


def req(method=b"GET", path=b"/", version=b"1.1", headers=(), body=b""):
    out = method + b" " + path + b" HTTP/" + version + b"\r\nHost: fuzz\r\n"
    for h in headers:
        out += h + b"\r\n"
    return out + b"\r\n" + body


def chunked(*pieces, trailers=b""):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n" + trailers + b"\r\n"


SEEDS = {
    "get": req(),
    "get-query-fragment": req(path=b"/l/a%20b%2Fc?x=1&y=%41#frag"),
    "get-absolute-form": req(path=b"http://example.com:8080/p?q"),
    "options-asterisk": req(b"OPTIONS", b"*"),
    "head": req(b"HEAD", b"/g"),
    "http10-keepalive": req(version=b"1.0", headers=[b"Connection: keep-alive"]) + req(),
    "post-content-length": req(b"POST", b"/c", headers=[b"Content-Length: 5"], body=b"hello"),
    "post-spooled": req(b"POST", b"/r", headers=[b"Content-Length: 1000"],
                        body=b"line\n" * 200),
    "post-chunked-trailers": req(b"POST", b"/w", headers=[b"Transfer-Encoding: chunked"],
                                 body=chunked(b"abc", b"defgh" * 30,
                                              trailers=b"X-T: 1\r\n")),
    "post-chunked-ext": req(b"POST", b"/f", headers=[b"Transfer-Encoding: chunked"],
                            body=b"3;name=\"v\"\r\nabc\r\n0\r\n\r\n"),
    "expect-continue": req(b"POST", b"/", headers=[b"Expect: 100-continue",
                                                  b"Content-Length: 3"], body=b"xyz"),
    "pipelined": req(path=b"/g") + req(path=b"/x") + req(path=b"/e") + req(path=b"/l"),
    "forwarded": req(headers=[b"X-Forwarded-For: 1.2.3.4, 5.6.7.8",
                              b"X-Forwarded-Proto: https", b"X_Forwarded_For: 9.9.9.9"]),
    "repeated-headers": req(headers=[b"Accept: a", b"Accept: b", b"Cookie: c=1",
                                     b"X-Custom-Header: " + b"v" * 300]),
    "too-large-body": req(b"POST", b"/", headers=[b"Content-Length: 999999"]),
    "too-large-head": req(headers=[b"X-Big: " + b"b" * 2100]),
    "upgrade": req(headers=[b"Connection: Upgrade", b"Upgrade: websocket"]) + b"\x00\x01",
    "connect": b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n",
    "cl-and-te": req(b"POST", headers=[b"Content-Length: 3", b"Transfer-Encoding: chunked"],
                     body=chunked(b"abc")),
    "bad-version": b"GET / HTTP/2.0\r\n\r\n",
    "partial-head": b"GET /slow HTTP/1.1\r\nHost: x\r\nX-A: 1",
    # issue 14: the request syntax of RFC 9112, valid and not
    "leading-empty-lines": b"\r\n\r\n" + req(path=b"/g"),
    "bare-lf-request-line": b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    "bare-lf-head-end": b"GET / HTTP/1.1\r\nHost: x\r\n\n",
    "http17": b"GET /e HTTP/1.7\r\nHost: x\r\n\r\n",
    "http30": b"GET / HTTP/3.0\r\nHost: x\r\n\r\n",
    "unknown-method": b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n" + req(),
    "absolute-form-ipv6": req(path=b"https://[::1]:8443/e?q=1#f"),
    "absolute-form-empty-path": req(b"OPTIONS", b"http://example.com"),
    "absolute-form-userinfo": req(path=b"http://u@example.com/"),
    "asterisk-get": req(path=b"*"),
    "two-hosts": req(headers=[b"Host: other"]),
    "two-content-types": req(headers=[b"Content-Type: a", b"Content-Type: b"]),
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "bad-host": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
    "chunk-extensions": req(b"POST", b"/c", headers=[b"Transfer-Encoding: chunked"],
                            body=b'3;a\r\nabc\r\n2 ; b = c ;d="e\\"f"\r\nde\r\n0;z\r\n'
                                 b"T: 1\r\n\r\n"),
    "chunk-extension-bad": req(b"POST", b"/", headers=[b"Transfer-Encoding: chunked"],
                               body=b"3;=x\r\nabc\r\n0\r\n\r\n"),
    "trailer-bare-lf": req(b"POST", b"/", headers=[b"Transfer-Encoding: chunked"],
                           body=b"3\r\nabc\r\n0\r\nT: 1\n\r\n"),
    # under the prefix csrc/fuzz/fuzz_static.c mounts (/s); the app's paths for fuzz_conn
    "static-get": req(path=b"/s/a.css") + req(b"HEAD", b"/s/app.3f2a1b9c.js?v=1"),
    "static-conditional": req(path=b"/s/app.js", headers=[
        b"Accept-Encoding: gzip, br;q=0.5, *;q=0", b'If-None-Match: W/"x", "y"',
        b"If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT", b'If-Match: *']),
    "static-range": req(path=b"/s/app.js", headers=[
        b"Range: bytes=2-5", b"If-Range: Sunday, 06-Nov-94 08:49:37 GMT"]) + req(
        path=b"/s/a.css", headers=[b"Range: bytes=-3"]),
    "static-traversal": req(path=b"/s/%2e%2e/secret.txt") + req(path=b"/s/up/secret.txt")
    + req(path=b"/s/out.txt") + req(path=b"/s/etc/passwd") + req(path=b"/s/a%00b%5c"),
    "static-dirs": req(path=b"/s/d") + req(path=b"/s/d/") + req(b"HEAD", b"/s/d/x/d/?q")
    + req(path=b"/s/fifo") + req(b"POST", b"/s/a.css", headers=[b"Content-Length: 1"],
                                 body=b"x"),
}
STREAMING = {
    "stream-chunked": req(b"POST", b"/", headers=[b"Transfer-Encoding: chunked"],
                          body=chunked(b"a" * 100, b"b" * 3000, b"c")),
    "stream-read": req(b"POST", b"/r", headers=[b"Content-Length: 10"], body=b"0123456789"),
    "stream-disconnect": req(b"POST", b"/", headers=[b"Content-Length: 100"], body=b"short"),
    "stream-too-large": req(b"POST", b"/", headers=[b"Transfer-Encoding: chunked"],
                            body=b"5000\r\n" + b"z" * 3000),
    "stream-bad-chunk": req(b"POST", b"/", headers=[b"Transfer-Encoding: chunked"],
                            body=b"3\r\nabc\r\nzz\r\n"),
    "stream-chunk-extensions": req(b"POST", b"/r", headers=[b"Transfer-Encoding: chunked"],
                                   body=b'5; a="b";c\r\nhello\r\n0\r\n\r\n'),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        for flags, step, suffix in ((0, 0, ""), (2, 7, "-split")):
            with open(os.path.join(OUT, name + suffix), "wb") as f:
                f.write(bytes([flags, step]) + data)
    for name, data in STREAMING.items():
        for flags, step, suffix in ((1, 0, ""), (3, 13, "-split")):
            with open(os.path.join(OUT, name + suffix), "wb") as f:
                f.write(bytes([flags, step]) + data)


if __name__ == "__main__":
    main()
