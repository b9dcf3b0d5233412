"""A body spooled to a temporary file is the server's: its file is closed when the request
ends, even if the app keeps a reference (no descriptor outlives the request)."""

import socket
import threading

import aiowsgi

kept = []


def keeper(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        kept.append(environ["wsgi.input"])
        body = b"%d" % len(environ["wsgi.input"].read())
    else:
        body = b"closed" if kept and kept[-1].closed else b"open"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(data)
        answer = b""
        while not answer.endswith((b"open", b"closed", b"\r\n\r\n100")):
            chunk = c.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer


def test_spooled_body_file_is_closed_when_the_request_ends():
    server = aiowsgi.Server(keeper, bind="127.0.0.1:0", spool_threshold=16)
    port = int(server.addresses[0].rsplit(":", 1)[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        posted = exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                                b"Connection: close\r\n\r\n" + b"x" * 100)
        assert posted.endswith(b"\r\n\r\n100"), posted
        assert not hasattr(kept[-1], "getvalue")  # a real file, not memory
        answer = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.endswith(b"closed"), answer
    finally:
        server.stop()
        thread.join(10)
