"""Fixtures: every server a test starts comes from here, through tests/support/server.py.

``start``: a ``Launcher`` for this test (``start.apps``, ``start.cli``, ``start.script``,
``start.command``, ``start.in_thread``); every server it started is stopped when the test
ends, and a server that died without the test asking for it fails the test.

``shared_server(*apps, env=None, **options)``: the same, but the server is kept for the whole
module (started on first use, started again if it is found dead, which fails the test that
killed it).  ``server``: ``shared_server(ROUTER)``, the router of every test app with the default
options.

``server_options``: the extra options every aiowsgi server gets, one run of each server test
per entry of ``SERVER_VARIANTS`` below: the one place to run the suite over server modes.
"""

import pytest

from tests.support.server import ROUTER, Launcher

# name -> options added to every server a test starts.  With more than one entry every
# server-based test runs once per entry (its name in the test id), e.g. for the thread pool:
#     SERVER_VARIANTS = {"threads1": {"threads": 1}, "threads4": {"threads": 4}}
SERVER_VARIANTS = {"threads1": {"threads": 1}, "threads4": {"threads": 4}}


@pytest.fixture(scope="session",
                params=sorted(SERVER_VARIANTS) if len(SERVER_VARIANTS) > 1 else None)
def server_options(request):
    return SERVER_VARIANTS[getattr(request, "param", next(iter(SERVER_VARIANTS)))]


@pytest.fixture
def start(tmp_path, server_options):
    launcher = Launcher(tmp_path, server_options)
    yield launcher
    dead = launcher.stop_all()
    if dead:
        pytest.fail("a server died during the test:\n" + "\n".join(dead), pytrace=False)


class SharedServers:
    """Servers kept for a module, one per (apps, environment, options)."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.servers = {}

    def get(self, apps, options, env=None):
        key = (apps, tuple(sorted((env or {}).items())), tuple(sorted(options.items())))
        srv = self.servers.get(key)
        if srv is None or not srv.alive():
            if srv is not None:
                srv.stop()
            srv = self.servers[key] = self.launcher.apps(*apps, env=env, **options)
        return srv


@pytest.fixture(scope="module")
def _shared_servers(tmp_path_factory, server_options):
    launcher = Launcher(tmp_path_factory.mktemp("shared"), server_options)
    yield SharedServers(launcher)
    launcher.stop_all()


@pytest.fixture
def shared_server(_shared_servers):
    used = set()

    def get(*apps, env=None, **options):
        srv = _shared_servers.get(apps, options, env)
        used.add(srv)
        return srv

    yield get
    dead = [srv.died() for srv in used if not srv.alive()]
    if dead:
        pytest.fail("the shared server died during the test:\n" + "\n".join(dead),
                    pytrace=False)


@pytest.fixture
def server(shared_server):
    return shared_server(ROUTER)
