"""What the tests are built on; the fixtures over it are in tests/conftest.py.

- ``client``: the one HTTP client (``RawClient``, ``get``, ``get_json``; ``build_request``,
  ``chunk``, ``chunked`` to write requests byte for byte; ``timed_request`` and
  ``assert_served_promptly`` for "served meanwhile" checks).
- ``server``: the one server harness (``Server``, started through ``Launcher``: test apps,
  the command line, scripts, other programs, or a thread of the test process; always on
  port 0 or a socket the test bound; stopped by the fixture; ``/proc`` figures; the apps'
  events).
- ``waits``: the one wait helper (``wait_for``), and ``scaled`` time limits (AIOWSGI_SLOW).
- ``apps``: the WSGI apps the servers run (``router`` serves them all, ``stream_router`` the
  same with streaming input); ``serve`` runs them in ``aiowsgi.Server`` objects;
  ``core_server`` runs the router on ``aiowsgi._core.Server`` with a heartbeat.
- ``haproxy``: a real HAProxy in front (``HAProxy``: its config, its sockets, what its health
  checks say), started through the harness; ``netns``: hosts of their own, as network
  namespaces or loopback addresses.

tools/ runs the suite under sanitizers, valgrind and a debug CPython through the same
harness (AIOWSGI_SLOW, AIOWSGI_SERVER_WRAPPER, AIOWSGI_SKIP_RSS_CHECKS).
"""
