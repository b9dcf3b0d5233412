"""Serve test apps with ``aiowsgi.Server`` (a stand-in for the CLI, for the core tests).

    python tests/serve.py tests.apps:hello [tests.apps:other ...] [--option value ...]

Each APP (``module:attribute``) gets its own ``aiowsgi.Server`` bound to ``--bind`` (default
``127.0.0.1:0``); one line ``LISTENING <host> <port>`` per server is printed on stdout, in order.
Options are passed as keyword arguments (``--max-body-size 100`` -> ``max_body_size=100``; a
value is an int, a float, ``true``/``false``, or a string; a flag without value is True).
One app is served in the main thread; several apps are served in one thread each.
SIGTERM or SIGINT stops every server (gracefully) and the process exits 0.
"""

import importlib
import os
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
    return apps, options


def main(argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import aiowsgi

    specs, options = parse_args(argv)
    bind = options.pop("bind", "127.0.0.1:0")
    servers = [aiowsgi.Server(load(spec), bind=bind, **options) for spec in specs]
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
