"""Listening sockets shared by several loops (workers share them after fork; here two
``_core.Server`` loops in threads share one socket, which the kernel treats alike)."""

import socket
import sys
import threading
import time

from aiowsgi import _core


def ok_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def test_a_loop_stopping_as_a_connection_arrives_leaves_it_to_its_sibling():
    """A connection queued just as one loop stops must be accepted by the other loop: with
    EPOLLEXCLUSIVE the stopping loop could swallow the only wake-up (it lost 11 of 20)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(5)  # the stopping thread runs stop() before the loops see the event
    lost = 0
    try:
        for _ in range(10):
            ls = socket.socket()
            ls.bind(("127.0.0.1", 0))
            ls.listen(16)
            port = ls.getsockname()[1]
            a, b = _core.Server(ok_app, [ls.fileno()]), _core.Server(ok_app, [ls.fileno()])
            threads = [threading.Thread(target=s.run) for s in (a, b)]
            for t in threads:
                t.start()
            time.sleep(0.1)
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            a.stop(True, 5.0)
            c.setblocking(True)
            c.settimeout(2)
            try:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                lost += not c.recv(100).startswith(b"HTTP/1.1 200")
            except socket.timeout:
                lost += 1
            finally:
                c.close()
                b.stop(False)
                for t in threads:
                    t.join(10)
                ls.close()
    finally:
        sys.setswitchinterval(old)
    assert lost == 0, "%d connections were never accepted" % lost


def test_stop_before_run_returns_at_once():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(4)
    server = _core.Server(ok_app, [ls.fileno()])
    server.stop()
    t = threading.Thread(target=server.run)
    t.start()
    t.join(5)
    assert not t.is_alive()
    ls.close()
