"""Fixtures of the core tests: real servers in subprocesses (tests/support.py), on port 0.

``server``: the shared router server of the current test module (tests.apps:router with the
default options); it is checked after every test and restarted if a test killed it (and that
test then fails).  ``server_factory(app, **options)``: a fresh server for this test only,
stopped afterwards; a server that died during the test fails it.
"""

import pytest

from tests.support import ServerDied, ServerProcess


@pytest.fixture(scope="module")
def _module_servers():
    servers = {}
    yield servers
    for srv in servers.values():
        srv.stop()


@pytest.fixture
def server(_module_servers):
    srv = _module_servers.get("router")
    if srv is None or not srv.alive():
        srv = _module_servers["router"] = ServerProcess("tests.apps:router").start()
    yield srv
    try:
        srv.check_alive()
    except ServerDied as exc:
        pytest.fail("the server died during the test: %s" % exc, pytrace=False)


@pytest.fixture
def server_factory():
    started = []

    def start(*apps, env=None, **options):
        srv = ServerProcess(*apps, env=env, **options).start()
        started.append(srv)
        return srv

    yield start
    dead = []
    for srv in started:
        if not srv.alive():
            dead.append("%s: exit status %s; stderr:\n%s"
                        % (srv.apps, srv.proc.returncode, srv.stderr()[-4000:]))
        srv.stop()
    if dead:
        pytest.fail("server died during the test: " + "\n".join(dead), pytrace=False)
