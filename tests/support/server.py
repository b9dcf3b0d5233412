"""The one server harness: every server a test talks to is started, watched and stopped here.

A ``Server`` is a process in its own session (a master and its workers are stopped together),
its stdout and stderr in files under its own folder (readable while it runs), and, for the
test apps (tests/support/apps.py), an events file through which the apps report what happened
inside the server (``close()`` calls, app calls).  It is ready once it has printed one
``Listening on ADDRESS (N workers)`` line per listening socket, the line aiowsgi logs
(tests/support/serve.py prints the same): every socket is bound to port 0 by the server
itself, and the tests learn the port from that line, or pass a socket they bound themselves.

``Launcher`` (the ``start`` fixture of tests/conftest.py) starts servers the ways a user
does: test apps in ``aiowsgi.Server`` objects (``start.apps``), the command line
(``start.cli``), a script (``start.script``), any program (``start.command``), or an
``aiowsgi.Server`` on a thread of the test process (``start.in_thread``), and stops every
one of them when the test ends.  ``options`` are added to every aiowsgi server it starts
(the server variant of conftest.py).

Environment: ``AIOWSGI_SERVER_WRAPPER`` (e.g. "valgrind ...") is put in front of every
Python server's command line; ``AIOWSGI_SKIP_RSS_CHECKS`` turns memory bounds off (ASan).
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.support.client import RawClient, get, get_json, split_address, timed_request
from tests.support.waits import scaled, wait_for

ROOT = str(Path(__file__).resolve().parent.parent.parent)
ROUTER = "tests.support.apps:router"
EVENTS_ENV = "AIOWSGI_TEST_EVENTS"
WRAPPER = shlex.split(os.environ.get("AIOWSGI_SERVER_WRAPPER", ""))
# RSS means nothing under valgrind (its own memory) or ASan (freed blocks in quarantine)
RSS_MEANINGFUL = not WRAPPER and not os.environ.get("AIOWSGI_SKIP_RSS_CHECKS")
START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
LISTENING = re.compile(r"Listening on (\S+) \(\d+ workers?\)")


def child_env(extra=None):
    """The environment of a server: this checkout importable, unbuffered output, tracebacks on
    crashes, no stale bytecode, and no socket activation meant for someone else; then
    ``extra`` (a value of None removes the variable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # an edited app is always re-read from its source
    env.pop("LISTEN_FDS", None)
    env.pop("LISTEN_PID", None)
    for name, value in (extra or {}).items():  # None: leave the variable out
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def option_args(options):
    """``{"max_body_size": 10, "stream_input": True}`` -> ``--max-body-size 10 --stream-input``
    (False and None leave the option out)."""
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False and value is not None:
            args.extend([flag, str(value)])
    return args


def run_command(argv, cwd=ROOT, env=None, timeout=30.0):
    """Run a command that exits by itself (``aiowsgi --version``, an import failure) to its
    end; returns the CompletedProcess with text output."""
    return subprocess.run(argv, cwd=str(cwd), env=child_env(env), capture_output=True,
                          text=True, timeout=scaled(timeout), stdin=subprocess.DEVNULL)


def run_cli(*args, cwd, env=None):
    """Run ``python -m aiowsgi ARGS`` to its end (for commands that exit by themselves)."""
    return run_command([sys.executable, "-m", "aiowsgi", *args], cwd=cwd, env=env)


def cli_usage_error(*args, cwd, env=None):
    """The standard error of ``python -m aiowsgi ARGS``, which must end as a usage error
    (exit status 2) without serving."""
    result = run_cli(*args, cwd=cwd, env=env)
    assert result.returncode == 2, (result.returncode, result.stderr)
    return result.stderr


def unique_id(prefix="t"):
    """A short id unique to one test, for its events and requests (``?id=``) in a server."""
    return "%s%s" % (prefix, uuid.uuid4().hex[:12])


def sockets_of(pid):
    """How many sockets process ``pid`` has open."""
    count = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            count += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:  # closed meanwhile
            pass
    return count


def proc_status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def assert_still_serving(srv):
    """A server of the router still answers a plain request, after whatever the test did (and
    the loop has moved on past anything the previous request left behind)."""
    resp = srv.get("/hello/")
    assert resp.status == 200 and resp.body == b"Hello, world!\n", resp


class ServerDied(AssertionError):
    pass


class Server:
    """One server process.  ``argv`` runs in ``cwd``; its files go to ``workdir``.

    It is ready when ``ready()`` is true, by default once ``listeners`` start-up lines are
    out (``addresses`` then holds them in order: ``"127.0.0.1:41234"``, ``"[::1]:5000"``,
    ``"unix:/path"``).  A test that passes a socket it bound gives ``addresses`` itself.
    """

    def __init__(self, argv, workdir, cwd=ROOT, env=None, listeners=1, addresses=None,
                 ready=None, pass_fds=(), wrap=True):
        self.argv = (WRAPPER if wrap else []) + [str(a) for a in argv]
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cwd = str(cwd)
        self.stdout_path = self.workdir / "stdout"
        self.stderr_path = self.workdir / "stderr"
        self.events_path = self.workdir / "events"
        self.events_path.write_bytes(b"")
        self.env = child_env(dict(env or {}, **{EVENTS_ENV: str(self.events_path)}))
        self.listeners = listeners
        self.addresses = list(addresses or [])
        self.ready = ready
        self.pass_fds = tuple(pass_fds)
        self.proc = None
        self.expect_exit = False  # the test stops (or waits for) this server itself

    def __repr__(self):
        return "<Server %s %s>" % (" ".join(self.argv[-4:]), self.addresses)

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout=START_TIMEOUT):
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL,
                                         pass_fds=self.pass_fds, start_new_session=True)
        if not wait_for(lambda: self._is_ready() or self.proc.poll() is not None, timeout):
            self.kill()
            raise ServerDied("%r not ready after %ss; stderr:\n%s"
                             % (self, scaled(timeout), self.stderr()[-6000:]))
        if not self._is_ready():
            raise ServerDied("%r exited with %s before it was ready; output:\n%s%s"
                             % (self, self.proc.returncode, self.stdout()[-2000:],
                                self.stderr()[-6000:]))
        return self

    def _is_ready(self):
        if self.ready is not None:
            return self.ready()
        if len(self.addresses) >= self.listeners:
            return True
        # stdout first: tests/support/serve.py announces its servers there, in order (each
        # also logs the line to stderr when it starts serving, in any order)
        for text in (self.stdout(), self.stderr()):
            found = LISTENING.findall(text)
            if len(found) >= self.listeners:
                self.addresses = [url[len("http://"):] if url.startswith("http://") else url
                                  for url in found]
                return True
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def died(self):
        """Why the server is gone when the test did not stop it itself; None otherwise."""
        if self.expect_exit or self.alive():
            return None
        return "%r exited with %s; stderr:\n%s" % (self, self.proc.returncode,
                                                   self.stderr()[-6000:])

    def check_alive(self):
        if not self.alive():
            raise ServerDied(self.died() or "%r is not running" % self)

    def signal(self, signum):
        """Send ``signum``; unless it is one that keeps a server running (HUP, USR1, USR2),
        the server may exit from now on."""
        if signum not in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
            self.expect_exit = True
        self.proc.send_signal(signum)

    def wait(self, timeout=STOP_TIMEOUT):
        """The exit status, or None if the process still runs after ``timeout`` (scaled)."""
        self.expect_exit = True
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (a graceful stop), then SIGKILL to the whole session if it is still there
        after ``timeout``; returns the exit status."""
        self.expect_exit = True
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.kill()
        self._kill_leftovers()
        return self.proc.returncode

    def kill(self):
        """SIGKILL to the server and every process of its session (its workers)."""
        self.expect_exit = True
        if self.proc is not None and self.proc.poll() is None:
            self._kill_leftovers()
            self.proc.wait(scaled(STOP_TIMEOUT))

    def _kill_leftovers(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # -- talking to it ------------------------------------------------------------------------

    @property
    def address(self):
        return self.addresses[0]

    @property
    def host(self):
        return split_address(self.address)[0]

    @property
    def port(self):
        return split_address(self.address)[1]

    def url(self, path="/", index=0):
        return "http://%s%s" % (self.addresses[index], path)

    def client(self, index=0, **kwargs):
        """A RawClient connected to listening socket ``index``."""
        return RawClient(self.addresses[index], **kwargs)

    def get(self, target="/", index=0, **kwargs):
        """One request on a new connection (see client.get)."""
        return get(self.addresses[index], target, **kwargs)

    # -- what it said and did -----------------------------------------------------------------

    def stdout(self):
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def stderr(self):
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def wait_stderr(self, text, timeout=10.0):
        """Wait until ``text`` is in stderr; returns stderr (None on time-out)."""
        return wait_for(lambda: text in self.stderr() and self.stderr(), timeout) or None

    def events(self, ident=None):
        """What the apps recorded, as lists of words; only those of ``ident`` if given (then
        without the id)."""
        text = self.events_path.read_bytes().decode("utf-8")
        rows = [line.split() for line in text.splitlines() if line.strip()]
        if ident is None:
            return rows
        return [row[1:] for row in rows if row and row[0] == ident]

    def count_events(self, ident, *words):
        """How many events of ``ident`` begin with ``words`` (numbers compare as text)."""
        words = [str(w) for w in words]
        return sum(1 for row in self.events(ident) if row[:len(words)] == words)

    def wait_event(self, ident, *words, count=1, timeout=10.0):
        """Wait until ``ident`` has recorded an event beginning with ``words`` ``count``
        times; true if it has."""
        return wait_for(lambda: self.count_events(ident, *words) >= count, timeout)

    # -- the process, from /proc --------------------------------------------------------------

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        """The pids of the server's child processes (a master's workers) right now."""
        with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
            return [int(pid) for pid in f.read().split()]

    def rss_kib(self):
        return proc_status_kib(self.pid, "VmRSS")

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def fd_targets(self):
        """The server's open descriptors, as {fd: what it points to}."""
        out = {}
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
            except FileNotFoundError:
                pass
        return out

    def open_files_under(self, directory):
        """Files under ``directory`` the server holds open (its own output files aside)."""
        return sorted(t for t in self.fd_targets().values()
                      if t.startswith(str(directory)) and not t.startswith(str(self.workdir)))

    def cpu_seconds(self):
        """User plus system CPU time the process has used."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class InThread:
    """A server running on a thread of the test process: ``serve()`` runs until ``stop``
    (``stop(graceful)``) makes it return.  ``addresses`` as for ``Server``."""

    def __init__(self, serve, stop, addresses=()):
        self.addresses = list(addresses)
        self._stop = stop
        self.errors = []
        self.thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self.thread.start()

    def _run(self, serve):
        try:
            serve()
        except BaseException as exc:  # reported by stop()
            self.errors.append(exc)

    address = Server.address
    client = Server.client
    get = Server.get

    def stop(self, graceful=True):
        """Stop, and check the serving thread returned without an error."""
        self._stop(graceful)
        self.thread.join(scaled(STOP_TIMEOUT))
        assert not self.thread.is_alive(), "the server thread did not return"
        assert self.errors == [], self.errors


def write_cli_app(directory, name="app", version="1"):
    """``directory/name.py``: the reporting app of tests/support/apps.py with its own
    ``VERSION`` (the command-line tests import it from the current directory, and edit it)."""
    path = Path(directory) / (name + ".py")
    path.write_text("from tests.support.apps import reporting_app\n\n"
                    "VERSION = %r\napp = reporting_app(VERSION)\n" % version)
    return path


def distinct_worker_pids(address, want, timeout=20.0):
    """Pids of ``want`` different workers of the reporting app (tests/support/apps.py), found
    by keeping one worker busy in a slow request while asking again (the busy worker cannot
    accept, so another one must answer)."""
    seen = []

    def ask():
        busy = threading.Thread(target=lambda: seen.append(
            get_json(address, "/sleep?0.5")["pid"]))
        busy.start()
        time.sleep(0.2)
        seen.append(get_json(address, "/")["pid"])
        busy.join(10)
        return len(set(seen)) >= want

    wait_for(ask, timeout, interval=0)
    return sorted(set(seen))


def sample_while(busy, srv, client, target="/hello/", every=0.05, timeout=800.0):
    """While ``busy()`` holds (a heavy load runs beside), time one request of ``client`` for
    ``target`` every ``every`` seconds and follow the server's resident size.  Returns the
    latencies and the peak RSS in KiB; gives up after ``timeout`` seconds (scaled)."""
    latencies, peak, due = [], [srv.rss_kib()], [time.monotonic()]

    def sample():
        if not busy():
            return True
        peak.append(max(peak.pop(), srv.rss_kib()))
        if time.monotonic() >= due[0]:
            latencies.append(timed_request(client, target))
            due[0] = time.monotonic() + every
        return False

    wait_for(sample, timeout, interval=0.01)
    return latencies, peak[0]


class Launcher:
    """Starts servers for one test (or one module), all of them stopped by ``stop_all``."""

    def __init__(self, workdir, options=None):
        self.workdir = Path(workdir)
        self.options = dict(options or {})
        self.started = []

    def _start(self, argv, **kwargs):
        srv = Server(argv, self.workdir / ("server-%d" % len(self.started)), **kwargs)
        self.started.append(srv)
        return srv.start()

    def apps(self, *specs, env=None, **options):
        """The test apps ``specs`` (``module:attribute``), one ``aiowsgi.Server`` each, in
        one process (tests/support/serve.py) on 127.0.0.1 port 0; ``options`` are keyword
        arguments of every ``aiowsgi.Server`` (``sN_<name>`` for server N only)."""
        argv = [sys.executable, "-m", "tests.support.serve", *specs,
                *option_args(dict(self.options, **options))]
        return self._start(argv, env=env, listeners=len(specs))

    def cli(self, *args, cwd=None, command=(sys.executable, "-m", "aiowsgi"), prefix=(),
            **kwargs):
        """The command line, ``python -m aiowsgi ARGS`` (or ``command ARGS``), in ``cwd``
        (default: the test's folder, where the app of ``write_cli_app`` is written)."""
        if cwd is None:
            cwd = self.workdir
            if not (cwd / "app.py").exists():
                write_cli_app(cwd)
        argv = [*prefix, *command, *option_args(self.options), *args]
        return self._start(argv, cwd=cwd, **kwargs)

    def script(self, path, *args, **kwargs):
        """``python PATH ARGS``: an example, or a script the test wrote (or ``-m MODULE``)."""
        return self._start([sys.executable, path, *args], **kwargs)

    def command(self, argv, **kwargs):
        """Any other program (nginx): not wrapped, ready when ``ready()`` says so."""
        return self._start(argv, wrap=False, **kwargs)

    def in_thread(self, app, bind="127.0.0.1:0", **options):
        """An ``aiowsgi.Server`` serving on a thread of the test process."""
        import aiowsgi

        server = aiowsgi.Server(app, bind, **dict(self.options, **options))
        running = InThread(server.serve_forever, server.stop, server.addresses)
        running.server = server
        self.started.append(running)
        return running

    def stop_all(self):
        """Stop everything; returns what died during the test without being asked to."""
        dead = []
        for srv in reversed(self.started):  # a proxy before the server behind it
            if isinstance(srv, InThread):
                if srv.thread.is_alive():
                    srv.stop(graceful=False)
                continue
            why = srv.died()
            if why:
                dead.append(why)
            srv.stop()
        return dead
