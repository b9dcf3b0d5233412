"""Serve test apps with ``aiowsgi.Server`` (a stand-in for the CLI, for the core tests).

    python tests/serve.py tests.apps:hello [tests.apps:other ...] [--option value ...]

Each APP (``module:attribute``) gets its own ``aiowsgi.Server`` bound to ``--bind`` (default
``127.0.0.1:0``); one line ``LISTENING <host> <port>`` per server is printed on stdout, in order
(``LISTENING unix <path>`` for ``--bind unix:<path>``).
Options are passed as keyword arguments (``--max-body-size 100`` -> ``max_body_size=100``; a
value is an int, a float, ``true``/``false``, or a string; a flag without value is True).
An option named ``--sN-<name>`` applies to the N-th server only (from 0), e.g.
``--s1-max-body-size 10``.  One app is served in the main thread; several apps are served in
one thread each.
SIGTERM or SIGINT stops every server (gracefully) and the process exits 0.
``--record-access``: an ``access_log`` callable that appends ``access <status> <bytes>
<method> <raw uri>`` lines to the events file (``$AIOWSGI_TEST_EVENTS``, see tests/apps.py).

To check the tests themselves against a reference server, ``AIOWSGI_TEST_REFERENCE=waitress``
serves the (first) app with waitress instead (options ignored; some tests then fail where
waitress differs from SPEC.md).
"""

import importlib
import os
import re
import signal
import sys
import threading


def load(spec):
    module_name, _, attr = spec.partition(":")
    obj = importlib.import_module(module_name)
    for part in (attr or "application").split("."):
        obj = getattr(obj, part)
    return obj


def parse_value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


LIST_OPTIONS = ("forwarded_allow_ips", "static")  # comma-separated on the command line


def parse_args(argv):
    apps, options = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            name = arg[2:].replace("-", "_")
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                options[name] = parse_value(argv[i + 1])
                i += 2
            else:
                options[name] = True
                i += 1
        else:
            apps.append(arg)
            i += 1
    if not apps:
        sys.exit("usage: serve.py APP [APP...] [--option value...]")
    for name in options:
        if name.split("_", 1)[-1] in LIST_OPTIONS or name in LIST_OPTIONS:
            options[name] = [v for v in str(options[name]).split(",") if v]
    return apps, options


def serve_reference(spec):
    import waitress

    server = waitress.create_server(load(spec), host="127.0.0.1", port=0)
    print("LISTENING 127.0.0.1 %s" % server.effective_port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.run()
    return 0


def record_access(environ, status, size, duration):
    from tests.apps import record

    record("access", status, size, environ.get("REQUEST_METHOD") or "-",
           environ.get("RAW_URI") or "-")


def main(argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
    servers = []
    for spec, own in zip(specs, per_server):
        kwargs = dict(options, **own)
        servers.append(aiowsgi.Server(load(spec), bind=kwargs.pop("bind", bind), **kwargs))
    for server in servers:
        for address in server.addresses:
            host, _, port = address.rpartition(":")
            print("LISTENING %s %s" % (host.strip("[]"), port), flush=True)

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
            thread.join(0.1)  # wakes up so the main thread can run signal handlers
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
