"""Serve test apps with ``aiowsgi.Server`` objects: the stand-in for the command line that
tests/support/server.py (``Launcher.apps``) runs in a subprocess.

    python -m tests.support.serve tests.support.apps:router [APP ...] [--option value ...]

Each APP (``module:attribute``) gets its own ``aiowsgi.Server`` bound to ``--bind`` (default
``127.0.0.1:0``) and one line ``Listening on ADDRESS (1 worker)`` on stdout, in order, as
aiowsgi's command line logs it.  Options are keyword arguments (``--max-body-size 100`` ->
``max_body_size=100``; a value is an int, a float, ``true``/``false`` or a string; a flag
alone is True; ``--forwarded-allow-ips`` and ``--static`` are comma-separated lists).  ``--sN-<name>``
applies to the N-th server only (from 0).  One app is served on the main thread, several on
one thread each.  SIGTERM or SIGINT stops every server gracefully, and the process exits 0.
``--record-access``: an ``access_log`` callable that records ``access <status> <bytes>
<method> <raw uri>`` in the events file (tests/support/apps.py ``record``).  ``--quiet``: the
error log and wsgi.errors go nowhere (the leak soak makes thousands of app errors).

To check the tests themselves against a reference server, ``AIOWSGI_TEST_REFERENCE=waitress``
serves the (first) app with waitress instead (options ignored; tests fail where waitress
differs from SPEC.md).
"""

import importlib
import operator
import os
import re
import signal
import sys
import threading

LIST_OPTIONS = ("forwarded_allow_ips", "static")


def load(spec):
    """The object ``module:dotted.attribute`` names (``application`` by default)."""
    module_name, _, attr = spec.partition(":")
    return operator.attrgetter(attr or "application")(importlib.import_module(module_name))


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parse_args(argv):
    apps, options = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            apps.append(arg)
            i += 1
            continue
        name = arg[2:].replace("-", "_")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            options[name] = parse_value(argv[i + 1])
            i += 2
        else:
            options[name] = True
            i += 1
    if not apps:
        sys.exit("usage: python -m tests.support.serve APP [APP...] [--option value...]")
    for name in options:
        if re.sub(r"^s\d+_", "", name) in LIST_OPTIONS:
            options[name] = [v for v in str(options[name]).split(",") if v]
    return apps, options


def announce(address):
    url = address if address.startswith("unix:") else "http://" + address
    print("Listening on %s (1 worker)" % url, flush=True)


def serve_reference(spec):
    import waitress

    server = waitress.create_server(load(spec), host="127.0.0.1", port=0)
    announce("127.0.0.1:%d" % server.effective_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()
    return 0


def record_access(environ, status, size, duration):
    from tests.support.apps import record

    record("access", status, size, environ.get("REQUEST_METHOD") or "-",
           environ.get("RAW_URI") or "-")


def main(argv):
    specs, options = parse_args(argv)
    if os.environ.get("AIOWSGI_TEST_REFERENCE") == "waitress":
        return serve_reference(specs[0])
    import aiowsgi

    per_server = [{} for _ in specs]
    for name in list(options):
        match = re.match(r"s(\d+)_(.+)$", name)
        if match:
            per_server[int(match.group(1))][match.group(2)] = options.pop(name)
    bind = options.pop("bind", "127.0.0.1:0")
    if options.pop("record_access", False):
        options["access_log"] = record_access
    if options.pop("quiet", False):
        options["errors"] = open(os.devnull, "w")
        options["log"] = lambda level, message, exc: None
    servers = []
    for spec, own in zip(specs, per_server):
        kwargs = dict(options, **own)
        servers.append(aiowsgi.Server(load(spec), bind=kwargs.pop("bind", bind), **kwargs))
    for server in servers:
        for address in server.addresses:
            announce(address)

    def stop(signum, frame):
        for server in servers:
            server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if len(servers) == 1:
        servers[0].serve_forever()
        return 0
    threads = [threading.Thread(target=s.serve_forever, name="server-%d" % i, daemon=True)
               for i, s in enumerate(servers)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(0.1)  # wakes up so that the main thread runs signal handlers
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
