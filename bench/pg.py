"""A throw-away PostgreSQL cluster for the database workloads (db, fortunes and their flask forms).

Debian's binaries (/usr/lib/postgresql/VERSION/bin), a cluster made by initdb in a temporary
directory, listening on a unix socket in that directory only (no TCP), trust authentication.  It
holds TechEmpower's two tables: ``world`` (10,000 rows, a random number in 1..10000 each) and
``fortune`` (the messages below, written for this benchmark).  The postmaster runs in its own
session on the CPU the runner gives it (wrk's, so that the server under test stays alone on its
CPU and its CPU time per request never includes the database's); it is stopped at the end, also
on errors and Ctrl-C, and the directory removed.  As root it runs as the ``postgres`` user, since
PostgreSQL refuses to run as root.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import procstat

WORLD_ROWS = 10000
USER = DBNAME = "bench"
ADDED_FORTUNE = "Additional fortune added at request time."  # by the apps, to every page

# A dozen, some of which only render right when escaped (markup, ampersands, both quotes) or
# encoded (non-ASCII); their order by message differs from their order by id.
FORTUNES = [
    "A closed socket tells no tales.",
    "<script>alert('this fortune was not escaped');</script>",
    "Bread & butter & keep-alive.",
    'The "fast path" is the one nobody measured.',
    "Ünïcödé is not optional: 日本語, Ελληνικά, ✓.",
    "A queue without a bound is a memory leak with a schedule.",
    "It's never the GIL until you have measured it.",
    "Latency hides in the 99th percentile.",
    "One more thread will not fix a lock.",
    "<b>Bold claims</b> need numbers & a method.",
    "Every benchmark is also a benchmark of the benchmark.",
    "Zero-copy still costs a syscall.",
]


def _bindir():
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def _sql_literal(text):
    return "'" + text.replace("'", "''") + "'"


def schema_sql():
    rows = ",\n".join("(%d, %s)" % (i, _sql_literal(m)) for i, m in enumerate(FORTUNES, 1))
    return """
CREATE TABLE world (id integer PRIMARY KEY, randomnumber integer NOT NULL);
INSERT INTO world SELECT i, 1 + floor(random() * %d)::integer FROM generate_series(1, %d) AS i;
CREATE TABLE fortune (id integer PRIMARY KEY, message varchar(2048) NOT NULL);
INSERT INTO fortune VALUES
%s;
ANALYZE;
""" % (WORLD_ROWS, WORLD_ROWS, rows)


class Cluster:
    def __init__(self, cpu, max_connections, logpath):
        self.cpu = cpu
        self.max_connections = max_connections
        self.logpath = logpath
        self.dir = None
        self.proc = None
        self.bindir = _bindir()

    @property
    def conninfo(self):
        """libpq connection string: host is the socket's directory."""
        return "host=%s dbname=%s user=%s" % (self.dir, DBNAME, USER)

    def _demote(self):
        """Popen keyword arguments to run as postgres when we are root."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam("postgres")
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _run(self, argv, **kwargs):
        with open(self.logpath, "ab") as log:
            log.write(("$ %s\n" % " ".join(argv)).encode())
            log.flush()
            subprocess.run(argv, check=True, stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                           stdout=log, stderr=subprocess.STDOUT, timeout=120,
                           env=dict(os.environ, LC_ALL="C.UTF-8"), **self._demote(), **kwargs)

    def start(self):
        """initdb, start the postmaster, load the tables.  Raises RuntimeError on failure."""
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (bench/setup.sh installs Debian's)")
        self.dir = tempfile.mkdtemp(prefix="aiowsgi-bench-pg-")
        demote = self._demote()
        if demote:
            os.chown(self.dir, demote["user"], demote["group"])
        data = os.path.join(self.dir, "data")
        try:
            self._run([os.path.join(self.bindir, "initdb"), "-D", data, "-U", USER,
                       "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
            self._start_postmaster(data)
            self._wait_ready()
            self._run([os.path.join(self.bindir, "psql"), "-h", self.dir, "-U", USER, "-q",
                       "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c",
                       "CREATE DATABASE %s" % DBNAME])
            self._run([os.path.join(self.bindir, "psql"), "-h", self.dir, "-U", USER, "-q",
                       "-v", "ON_ERROR_STOP=1", "-d", DBNAME], input=schema_sql().encode(),
                      stdin=None)
        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
            self.stop()
            raise RuntimeError("PostgreSQL did not start: %s (see %s)" % (exc, self.logpath))

    def _start_postmaster(self, data):
        # Nothing is durable here (the tables are made anew each run): fsync off.  No TCP at all.
        argv = ["taskset", "-c", self.cpu, os.path.join(self.bindir, "postgres"), "-D", data,
                "-k", self.dir, "-c", "listen_addresses=", "-c", "fsync=off",
                "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=%d" % self.max_connections]
        log = open(self.logpath, "ab")
        log.write(("$ %s\n" % " ".join(argv)).encode())
        log.flush()
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         env=dict(os.environ, LC_ALL="C.UTF-8"),
                                         **self._demote())
        finally:
            log.close()

    def _wait_ready(self, timeout=30):
        isready = [os.path.join(self.bindir, "pg_isready"), "-q", "-h", self.dir, "-U", USER,
                   "-d", "postgres"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited with status %s" % self.proc.returncode)
            if subprocess.run(isready, stdin=subprocess.DEVNULL).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("postgres did not accept connections within %d s" % timeout)

    def stop(self):
        """Fast shutdown (SIGINT: backends end their sessions), SIGKILL if it hangs; remove the
        directory.  Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None:
            # Backends run in sessions of their own: note them before the postmaster goes.
            pids = procstat.tree(self.proc.pid)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            for pid in pids[1:]:
                _kill_if_postgres(pid)
        self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def _kill_if_postgres(pid):
    """SIGKILL a backend left behind (none is, after a fast shutdown), unless its pid was reused."""
    try:
        with open("/proc/%d/comm" % pid) as f:
            if f.read().strip() != "postgres":
                return
        os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass
