"""Start one in-process WSGI server: ``python serve.py SERVER MODULE:ATTR PORT [IDLE [STATIC]]``.

For servers that have no command line of their own (bjoern, fastwsgi, meinheld) and for aiowsgi
until its CLI is the usual way in.  Always binds 127.0.0.1, one process, one worker.  IDLE 0 is
the server's default keep-alive timeout; STATIC, a folder aiowsgi serves at /static.
"""

import importlib
import sys


def load(spec):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in (attr or "app").split("."):
        obj = getattr(obj, part)
    return obj


def run_aiowsgi(app, port, idle, static=None):
    import aiowsgi

    options = {"keepalive": idle} if idle else {}
    if static:
        options["static"] = {"/static": static}
    aiowsgi.serve(app, bind="127.0.0.1:%d" % port, **options)


def run_bjoern(app, port, idle, static=None):
    import bjoern

    bjoern.run(app, "127.0.0.1", port)


def run_fastwsgi(app, port, idle, static=None):
    import fastwsgi

    fastwsgi.run(wsgi_app=app, host="127.0.0.1", port=port, loglevel=0)


def run_meinheld(app, port, idle, static=None):
    from meinheld import server

    server.listen(("127.0.0.1", port))
    server.set_backlog(2048)
    # meinheld closes after each response unless keep-alive is switched on.
    server.set_keepalive(idle or 30)
    server.set_max_content_length(256 * 1024 * 1024)
    server.run(app)


RUNNERS = {"aiowsgi": run_aiowsgi, "bjoern": run_bjoern, "fastwsgi": run_fastwsgi,
           "meinheld": run_meinheld}


def main(argv):
    name, spec, port = argv[1], argv[2], int(argv[3])
    idle = int(argv[4]) if len(argv) > 4 else 0
    static = argv[5] if len(argv) > 5 else None
    RUNNERS[name](load(spec), port, idle, static)


if __name__ == "__main__":
    main(sys.argv)
