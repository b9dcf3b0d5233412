"""How to start each server under test: one process (plus whatever it forks), one worker, 127.0.0.1.

Every entry turns (app spec, port, idle timeout, work directory, threads) into an argv; ``threads``
is None for a server run with its own default, else the size of its pool of app threads.  Settings
beyond the defaults are only those needed for the server to accept the benchmark's connection counts
at all (connection limits, poll instead of select, keep-alive where it is off by default); each is
commented.

The thread-pool variants (issue 13: aiowsgi --threads, granian --blocking-threads, gunicorn's
gthread worker, waitress --threads) run hello and the workloads that wait (THREAD_WORKLOADS) with
the same number of threads, the runner's ``--threads``; the other servers do not run those.
"""

import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_BIN = os.path.dirname(sys.executable)
LIMIT = 12000  # connection limits: above the 10,000 idle connections of bench/saturate
# Workloads whose app waits (a sleep, a database): only for servers with a pool of app threads.
THREAD_WORKLOADS = ("longio", "db", "fortunes", "flask-db", "flask-fortunes")
RUN_THREADS = "run"  # Server.threads: the runner's --threads


def _bin(name):
    return os.path.join(VENV_BIN, name)


def _serve(name):
    def argv(app, port, idle, work, threads=None, static=None):
        cmd = [sys.executable, os.path.join(HERE, "serve.py"), name, app, str(port)]
        if static:
            return cmd + [str(idle or 0), static]
        return cmd + ([str(idle)] if idle else [])
    return argv


def _aiowsgi(app, port, idle, work, threads=None, static=None):
    # Once the CLI exists it is the way in (master + 1 worker, as users run it).
    # BENCH_AIOWSGI_CLI=0 keeps the in-process launcher (no master process) for comparison.
    # The static workloads mount the data folder at /static (--static), the rest is the app's.
    if threads or (os.path.exists(os.path.join(ROOT, "aiowsgi", "__main__.py"))
                   and os.environ.get("BENCH_AIOWSGI_CLI") != "0"):
        cmd = [sys.executable, "-m", "aiowsgi", "--bind", "127.0.0.1:%d" % port, "--workers", "1"]
        cmd += ["--threads", str(threads)] if threads else []
        cmd += ["--static", "/static=" + static] if static else []
        return cmd + (["--keepalive", str(idle)] if idle else []) + [app]
    return _serve("aiowsgi")(app, port, idle, work, threads, static)


def _gunicorn(worker):
    def argv(app, port, idle, work, threads=None, static=None):
        cmd = [_bin("gunicorn"), "--workers", "1", "--worker-class", worker,
               "--bind", "127.0.0.1:%d" % port, "--backlog", "2048", "--log-level", "warning"]
        if worker in ("gevent", "gthread"):
            cmd += ["--worker-connections", str(LIMIT)]  # default 1000 would cap the 1000-conn runs
        if threads:
            cmd += ["--threads", str(threads)]
        if idle:
            cmd += ["--keep-alive", str(idle)]
        return cmd + [app]
    return argv


def _waitress(app, port, idle, work, threads=None, static=None):
    # Default connection limit is 100 and select() stops at fd 1024: raise the one, use poll().
    cmd = [_bin("waitress-serve"), "--listen=127.0.0.1:%d" % port, "--backlog=2048",
           "--connection-limit=%d" % LIMIT, "--asyncore-use-poll"]
    if threads:
        cmd.append("--threads=%d" % threads)  # its default is 4
    if idle:
        cmd.append("--channel-timeout=%d" % idle)
    return cmd + [app]


def _granian(app, port, idle, work, threads=None, static=None):
    # --blocking-threads: the threads that call the app (1 for the servers that have no pool).
    return [_bin("granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--runtime-threads", "1", "--blocking-threads", str(threads or 1),
            "--no-ws",
            "--backlog", "2048", "--log-level", "warning",
            # Its default (the backlog) caps open keep-alive connections near 2 x 2048.
            "--backpressure", str(LIMIT), app]


def _uwsgi(app, port, idle, work, threads=None, static=None):
    # --http-socket: uWSGI's native HTTP, no router process.  Not --http11-socket: with keep-alive
    # one sync worker stays on its first connection and starves the other 99 (or 999), so wrk
    # would time a single connection.  Here every request costs a new connection, as with
    # gunicorn's sync worker.
    module, _, attr = app.partition(":")
    return [_bin("uwsgi"), "--http-socket", "127.0.0.1:%d" % port, "--pythonpath", HERE,
            "--module", module, "--callable", attr or "app", "--processes", "1",
            "--listen", "2048", "--max-fd", str(LIMIT + 100), "--disable-logging", "--need-app",
            "--die-on-term", "--buffer-size", "65535",
            # Without it wrk counts every close after a response as a read error.
            "--add-header", "Connection: close"]


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {work}/nginx.pid;
error_log stderr warn;
events {{ worker_connections {limit}; }}
http {{
    access_log off;
    client_body_temp_path {work}/client_body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout {idle};
    sendfile on;
    server {{
        listen 127.0.0.1:{port} backlog=2048;
        location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
        location = /13k {{ default_type text/plain; alias {data}/13k; }}
        location = /1m {{ default_type text/plain; alias {data}/1m; }}
        location = /file {{ default_type application/octet-stream; alias {data}/file; }}
        location = /upload {{ client_max_body_size 0; default_type text/plain; return 200 "ok"; }}
        location /static/ {{ default_type application/octet-stream; alias {data}/; }}
    }}
}}
"""


def _nginx(app, port, idle, work, threads=None, static=None):
    conf = os.path.join(work, "nginx-%d.conf" % port)
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(work=work, port=port, limit=LIMIT, idle=idle or 75,
                                  data=os.path.join(work, "data")))
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", work, "-c", conf,
            "-e", "stderr"]


# Files served by the server itself at /static/ (aiowsgi --static, nginx), not through the app.
STATIC_WORKLOADS = ("static13k", "static1m")


class Server:
    def __init__(self, name, argv, package=None, modules=(), wsgi=True, apps=None, root=ROOT,
                 threads=None, static=False):
        self.name = name
        self.root = root          # the checkout whose aiowsgi is imported (PYTHONPATH)
        # (app, port, idle, workdir, threads, static dir or None) -> list
        self.argv = argv
        self.package = package    # distribution name whose version is recorded
        self.modules = modules    # must import in the venv for the server to count as installed
        self.wsgi = wsgi          # False for the reference (nginx serves fixed bodies)
        self.threads = threads    # None: the server's default; a number; RUN_THREADS
        # Workloads it can run: pools run hello and the waiting ones, the others all but those.
        self.apps = ("hello",) + THREAD_WORKLOADS if threads == RUN_THREADS and apps is None \
            else apps
        self.static = static      # serves files itself (the static workloads)

    def supports(self, workload):
        if workload in STATIC_WORKLOADS:
            return self.static
        if self.apps is None:
            return workload not in THREAD_WORKLOADS
        return workload in self.apps

    def thread_count(self, run_threads):
        return run_threads if self.threads == RUN_THREADS else self.threads


SERVERS = [
    Server("aiowsgi", _aiowsgi, "aiowsgi", ("aiowsgi._core",), static=True),
    Server("bjoern", _serve("bjoern"), "bjoern", ("bjoern",)),
    Server("fastwsgi", _serve("fastwsgi"), "fastwsgi", ("fastwsgi",)),
    Server("meinheld", _serve("meinheld"), "meinheld", ("meinheld.server",)),
    Server("granian", _granian, "granian", ("granian",)),
    Server("uwsgi", _uwsgi, "uWSGI", ()),
    Server("gunicorn-sync", _gunicorn("sync"), "gunicorn", ("gunicorn",)),
    Server("gunicorn-gevent", _gunicorn("gevent"), "gunicorn", ("gunicorn", "gevent")),
    Server("waitress", _waitress, "waitress", ("waitress",)),
    Server("aiowsgi-threads", _aiowsgi, "aiowsgi", ("aiowsgi._core",), threads=RUN_THREADS),
    # The pool's cost on an app that never waits, against the in-loop call of "aiowsgi".
    Server("aiowsgi-threads4", _aiowsgi, "aiowsgi", ("aiowsgi._core",), threads=4,
           apps=("hello",)),
    Server("granian-threads", _granian, "granian", ("granian",), threads=RUN_THREADS),
    Server("gunicorn-gthread", _gunicorn("gthread"), "gunicorn", ("gunicorn",),
           threads=RUN_THREADS),
    Server("waitress-threads", _waitress, "waitress", ("waitress",), threads=RUN_THREADS),
    Server("nginx", _nginx, None, (), wsgi=False, static=True,
           apps=("hello", "13k", "1m", "file13m", "upload100m", "pipelined")),
]

# BENCH_BASELINE=DIR adds "aiowsgi-base": the aiowsgi of another checkout (its extension built in
# place with bench/.venv's python), run the same way, so that a change is measured side by side
# with what it changes.
if os.environ.get("BENCH_BASELINE"):
    BASE = os.path.abspath(os.environ["BENCH_BASELINE"])
    SERVERS.insert(1, Server("aiowsgi-base", _aiowsgi, "aiowsgi", ("aiowsgi._core",), root=BASE,
                             static=os.environ.get("BENCH_BASELINE_STATIC") == "1"))
    SERVERS.insert([s.name for s in SERVERS].index("aiowsgi-threads") + 1,
                   Server("aiowsgi-base-threads", _aiowsgi, "aiowsgi", ("aiowsgi._core",),
                          root=BASE, threads=RUN_THREADS))

BY_NAME = {s.name: s for s in SERVERS}
