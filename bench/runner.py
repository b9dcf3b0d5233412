"""The benchmark runner (issue 7): every server, every workload, interleaved repeats, medians.

Run through ``bench/run`` (which installs everything first); ``bench/run --help`` lists the options.
The server is pinned to CPU 0 and wrk to CPU 1, one worker each; the database workloads' PostgreSQL
(bench/pg.py) runs on CPU 1 too, outside the server's process tree.  For every run it records
requests/s, p50/p99 latency, errors, the server tree's CPU time per request (utime+stime from
/proc/PID/stat before and after) and its peak RSS (VmHWM).  Results go to results/<mode>.json, then
report.py writes results/table.md and results/plot.png.
"""

import argparse
import datetime
import html
import http.client
import importlib.metadata
import json
import os
import platform
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pg
import procstat
import report
from servers import BY_NAME, HERE, ROOT, SERVERS, THREAD_WORKLOADS

SERVER_CPU, CLIENT_CPU = "0", "1"
HELLO = b"Hello, world!"
MB = 1024 * 1024


class Workload:
    def __init__(self, app, path, body_len, lua="plain.lua", lua_args=(), timeout=5,
                 body=None, check=None, static=False):
        self.app, self.path, self.body_len = app, path, body_len
        self.lua, self.lua_args, self.timeout, self.body = lua, list(lua_args), timeout, body
        self.check = check  # body -> None, or what is wrong with it
        self.static = static  # a file the server serves itself from the data folder

    @property
    def uses_db(self):
        return self.app.startswith(("app_db:", "app_flask_db:"))


def check_world(body):
    try:
        row = json.loads(body)
        if sorted(row) == ["id", "randomNumber"] and all(
                isinstance(v, int) and 1 <= v <= pg.WORLD_ROWS for v in row.values()):
            return None
    except ValueError:
        pass
    return "not a World row as JSON: %r" % body[:80]


# Inside a rendered cell: markup or a quote left as is, or an & that starts no character reference.
UNESCAPED = re.compile(r"""[<>"']|&(?!#[0-9]+;|#x[0-9a-fA-F]+;|[a-zA-Z]+;)""")


def check_fortunes(body):
    cells = re.findall(r"<tr><td>([0-9]+)</td><td>(.*?)</td></tr>", body.decode(errors="replace"))
    messages = [html.unescape(message) for _, message in cells]
    if messages != sorted(pg.FORTUNES + [pg.ADDED_FORTUNE]):
        return "not every fortune, sorted by message: %r" % messages[:3]
    bad = [message for _, message in cells if UNESCAPED.search(message)]
    return "not HTML-escaped: %r" % bad[0] if bad else None


WORKLOADS = {
    "hello": Workload("apps:app", "/hello", 13, body=HELLO),
    "13k": Workload("apps:app", "/13k", 13 * 1024),
    "1m": Workload("apps:app", "/1m", MB),
    "file13m": Workload("apps:app", "/file", 13 * MB, timeout=30),
    "upload100m": Workload("apps:app", "/upload", None, "upload.lua", ["100"], timeout=120,
                           body=b"%d" % (100 * MB)),
    "bottle": Workload("app_bottle:app", "/hello", 13, body=HELLO),
    "flask": Workload("app_flask:app", "/hello", 13, body=HELLO),
    "django": Workload("app_django:application", "/hello", 13, body=HELLO),
    "pipelined": Workload("apps:app", "/hello", 13, "pipeline.lua", ["16"], body=HELLO),
    # The same files as 13k and 1m, served by the server itself (aiowsgi --static, nginx) from
    # the data folder at /static/, without the app; ab measures them too (run_ab).
    "static13k": Workload("apps:app", "/static/13k", 13 * 1024, static=True),
    "static1m": Workload("apps:app", "/static/1m", MB, static=True),
    # Apps that wait (issue 13), run by the servers with a pool of app threads only.
    "longio": Workload("apps:app", "/longio", 13, body=HELLO),
    "db": Workload("app_db:app", "/db", None, check=check_world),
    "fortunes": Workload("app_db:app", "/fortunes", None, check=check_fortunes),
    "flask-db": Workload("app_flask_db:app", "/db", None, check=check_world),
    "flask-fortunes": Workload("app_flask_db:app", "/fortunes", None, check=check_fortunes),
}

# (workload, connections).  A 100 MB upload per request makes 100 connections pointless (nothing
# finishes within a run), so uploads use a handful of connections and are read as MB/s.
FULL_CASES = [("hello", 100), ("hello", 1000), ("13k", 100), ("13k", 1000), ("1m", 100),
              ("1m", 1000), ("file13m", 100), ("file13m", 1000), ("upload100m", 4),
              ("bottle", 100), ("bottle", 1000), ("flask", 100), ("flask", 1000),
              ("django", 100), ("django", 1000), ("pipelined", 100), ("static13k", 100),
              ("static1m", 100)]
THREAD_CASES = [(w, c) for w in THREAD_WORKLOADS for c in (100, 512)]
FULL_CASES += THREAD_CASES
QUICK_THREAD_CASES = [("longio", 100), ("fortunes", 100)]
QUICK_CASES = [("hello", 100), ("pipelined", 100), ("1m", 1000), ("bottle", 100), ("flask", 100),
               ("django", 100), ("static13k", 100), ("static1m", 100)] + QUICK_THREAD_CASES
AB_CONNS = 100  # ab -c, whatever the case's connections: the "ab -n 50000 -c 100 -r"
DEFAULT_THREADS = 32


def case_name(workload, conns):
    return "%s@%d%s" % (workload, conns, "x16" if workload == "pipelined" else "")


def parse_case(text):
    workload, _, conns = text.partition("@")
    conns = conns.split("x")[0]
    if workload not in WORKLOADS or not conns.isdigit():
        raise argparse.ArgumentTypeError("a case is WORKLOAD@CONNS, WORKLOAD one of "
                                         + ", ".join(WORKLOADS))
    return workload, int(conns)


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: every server is started in its own process group and killed at the end, whatever
# happens (normal end, an exception, Ctrl-C or SIGTERM to the runner).

LIVE = {}


def _raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, server, workload, idle, workdir, logdir, tag, threads, env=None):
        self.server = server
        self.port = free_port()
        static = os.path.join(workdir, "data") if workload.static else None
        argv = server.argv(workload.app, self.port, idle, workdir, server.thread_count(threads),
                           static)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, server.root]),
                   BENCH_FILE=os.path.join(workdir, "data", "file"), PYTHONDONTWRITEBYTECODE="1",
                   **(env or {}))
        self.logpath = os.path.join(logdir, "%s.log" % tag)
        self.logfile = open(self.logpath, "ab")
        self.logfile.write(("$ %s\n" % " ".join(argv)).encode())
        self.logfile.flush()
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, cwd=HERE, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.logfile,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_raise_nofile)
        self.pid = self.proc.pid  # taskset execs the server, so this is the server's pid
        LIVE[self.pid] = self

    def wait_ready(self, timeout=30):
        """Poll GET /hello until any HTTP answer; return None or why the server is not up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited with status %s (see %s)" % (self.proc.returncode, self.logpath)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    if s.recv(64).startswith(b"HTTP/1."):
                        return None
            except OSError:
                pass
            time.sleep(0.1)
        return "did not answer within %d s" % timeout

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        pids = procstat.tree(self.pid) if self.alive() else []
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Descendants that left the process group (none should) are ended by pid.
        for pid in pids[1:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)  # stragglers still in the group
        except ProcessLookupError:
            pass
        LIVE.pop(self.pid, None)
        self.logfile.close()


def stop_all():
    for running in list(LIVE.values()):
        running.stop()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


# ---------------------------------------------------------------------------------------------
# Correctness check before a server is measured on a workload: a wrong answer is not a result.

def verify(port, workload, server):
    try:
        if workload.lua == "pipeline.lua":
            return _verify_pipelined(port, int(workload.lua_args[0]))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=workload.timeout)
        if workload.lua == "upload.lua":
            size = int(workload.lua_args[0])
            chunk = b"u" * MB
            conn.request("POST", workload.path, body=(chunk for _ in range(size)),
                         headers={"Content-Type": "application/octet-stream"},
                         encode_chunked=True)
        else:
            conn.request("GET", workload.path)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as exc:
        return "%s: %s" % (type(exc).__name__, exc)
    if resp.status != 200:
        return "status %d, body %r" % (resp.status, body[:80])
    if not server.wsgi and workload.lua == "upload.lua":
        return None  # nginx answers uploads with a fixed body
    if workload.body is not None and body != workload.body:
        return "unexpected body %r" % body[:80]
    if workload.body_len is not None and len(body) != workload.body_len:
        return "body of %d bytes, expected %d" % (len(body), workload.body_len)
    return workload.check(body) if workload.check else None


def _verify_pipelined(port, depth):
    request = b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request * depth)
        data = b""
        deadline = time.monotonic() + 5
        while data.count(HELLO) < depth and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    got = data.count(HELLO)
    return None if got == depth else "%d of %d pipelined responses" % (got, depth)


# ---------------------------------------------------------------------------------------------
# One measured run.

def wrk(port, workload, conns, duration, scriptdir):
    script = os.path.join(scriptdir, workload.lua)
    cmd = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
           "--timeout", "%ds" % workload.timeout, "-s", script,
           "http://127.0.0.1:%d%s" % (port, workload.path)]
    if workload.lua_args:
        cmd += ["--"] + workload.lua_args
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=duration + workload.timeout + 60).stdout.decode(errors="replace")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    match = re.search(r"^BENCHJSON (.*)$", out, re.M)
    if not match:
        raise RuntimeError("wrk printed no summary:\n" + out[-2000:])
    stats = json.loads(match.group(1))
    # wrk's own CPU time (the runner's only child that ends meanwhile): with PostgreSQL's, what
    # one request costs the client's CPU, whatever else runs there.
    stats["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return stats, out


def measure(running, workload, conns, duration, warmup, scriptdir, db_pid=None):
    if warmup:
        wrk(running.port, workload, conns, warmup, scriptdir)
    cpu0 = procstat.cpu_seconds(running.pid)
    db0 = procstat.cpu_seconds(db_pid) if db_pid else 0.0
    client0 = procstat.cpu_ticks(CLIENT_CPU)
    server0, wall0 = procstat.cpu_ticks(SERVER_CPU), time.monotonic()
    stats, out = wrk(running.port, workload, conns, duration, scriptdir)
    cpu1 = procstat.cpu_seconds(running.pid)
    db1 = procstat.cpu_seconds(db_pid) if db_pid else 0.0
    client1 = procstat.cpu_ticks(CLIENT_CPU)
    server1, wall1 = procstat.cpu_ticks(SERVER_CPU), time.monotonic()
    seconds = stats["duration_us"] / 1e6
    requests = stats["requests"]
    errors = sum(stats[k] for k in ("connect", "read", "write", "timeout", "status"))
    return {
        "rps": requests / seconds if seconds else 0.0,
        "mb_per_s": stats["bytes"] / seconds / MB if seconds else 0.0,
        "p50_ms": stats["p50_us"] / 1000, "p99_ms": stats["p99_us"] / 1000,
        "requests": requests, "errors": errors,
        "error_detail": {k: stats[k] for k in ("connect", "read", "write", "timeout", "status")},
        "cpu_s": round(cpu1 - cpu0, 3),
        "cpu_us_per_req": (cpu1 - cpu0) / requests * 1e6 if requests else None,
        # PostgreSQL's share (on the client's CPU), and how busy that CPU was: near 100 %, wrk
        # and the database, not the server, set the pace.
        "db_cpu_us_per_req": (db1 - db0) / requests * 1e6 if db_pid and requests else None,
        "client_cpu_busy": ((client1[0] - client0[0]) / (client1[1] - client0[1])
                            if client1[1] > client0[1] else None),
        "client_cpu_us_per_req": stats["cpu_s"] / requests * 1e6 if requests else None,
        # The server's CPU kept busy by anyone else (the machine is shared): a disturbed run.
        "server_cpu_others": (max(0.0, (server1[0] - server0[0]) / (server1[1] - server0[1])
                                  - (cpu1 - cpu0) / (wall1 - wall0))
                              if server1[1] > server0[1] else None),
        # Large responses at 1000 connections: few finish within a run, but every byte counts.
        "cpu_us_per_mb": (cpu1 - cpu0) * 1e6 / (stats["bytes"] / MB) if stats["bytes"] else None,
        "peak_rss_kb": procstat.memory_kb(running.pid, "VmHWM"),
        "peak_rss_largest_kb": procstat.largest_kb(running.pid, "VmHWM"),
        "pss_kb": procstat.pss_kb(running.pid),
        "rss_kb": procstat.memory_kb(running.pid, "VmRSS"),
        "processes": len(procstat.tree(running.pid)),
    }


# ---------------------------------------------------------------------------------------------
# Inventory: what is installed, in which version.

def _import_check(modules, root=ROOT):
    if not modules:
        return None
    code = "import " + ", ".join(modules)
    proc = subprocess.run([sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, root])))
    if proc.returncode:
        return (proc.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


def _command_output(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (proc.stdout + proc.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def inventory():
    failures = {}
    path = os.path.join(HERE, ".venv", "install-failures.json")
    if os.path.exists(path):
        with open(path) as f:
            failures = json.load(f)
    versions, unavailable = {}, {}
    for server in SERVERS:
        why = None
        if server.name == "nginx":
            out = _command_output(["nginx", "-v"])
            if out is None:
                why = "nginx is not installed"
            else:
                versions["nginx"] = out.split("/")[-1]
        elif server.name == "uwsgi":
            out = _command_output([os.path.join(os.path.dirname(sys.executable), "uwsgi"),
                                   "--version"])
            if out is None:
                why = failures.get("uwsgi", "uwsgi is not installed")
            else:
                versions["uwsgi"] = out
        else:
            why = _import_check(server.modules, server.root)
            if why:
                why = failures.get(server.package.lower(), why)
            elif server.name.startswith("aiowsgi"):
                versions[server.name] = _aiowsgi_version(server.root)
            else:
                versions[server.name] = importlib.metadata.version(server.package)
                if server.name == "gunicorn-gevent":
                    versions[server.name] += " (gevent %s)" % importlib.metadata.version("gevent")
        if why:
            unavailable[server.name] = why
    tools = {"wrk": _command_output(["wrk", "-v"]), "python": platform.python_version()}
    if tools["wrk"]:
        tools["wrk"] = tools["wrk"].split()[1]  # "wrk 4.1.0 [epoll] Copyright ..."
    for pkg in ("bottle", "flask", "django", "matplotlib", "psycopg", "psycopg-binary"):
        try:
            tools[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            tools[pkg] = None
    return versions, unavailable, tools


def _aiowsgi_version(root=ROOT):
    out = subprocess.run([sys.executable, "-c", "import aiowsgi; print(aiowsgi.__version__)"],
                         cwd=root, capture_output=True, text=True).stdout.strip()
    commit = _command_output(["git", "-C", root, "rev-parse", "--short", "HEAD"])
    return "%s (git %s)" % (out, commit)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "loadavg_at_start": os.getloadavg()}


# ---------------------------------------------------------------------------------------------
# Aggregation: medians over the repeats of one (server, case).

def summarize(runs, by="case", keys=("rps", "mb_per_s", "p50_ms", "p99_ms", "errors",
                                     "cpu_us_per_req", "cpu_us_per_mb", "peak_rss_kb",
                                     "peak_rss_largest_kb", "pss_kb", "db_cpu_us_per_req",
                                     "client_cpu_busy", "client_cpu_us_per_req",
                                     "server_cpu_others")):
    """Medians over the repeats of each (server, the runs' ``by``) of ``keys`` (None: every key
    the results have); "failed" when no repeat gave a result."""
    groups = {}
    for run in runs:
        groups.setdefault((run["server"], run[by]), []).append(run)
    summary = {}
    for (server, what), group in groups.items():
        ok = [r for r in group if r.get("result")]
        entry = {"server": server, by: what, "repeats": len(ok)}
        if not ok:
            entry["failed"] = group[-1].get("failure", "no result")
        else:
            for key in keys or sorted({k for r in ok for k in r["result"]}):
                values = [r["result"].get(key) for r in ok if r["result"].get(key) is not None]
                entry[key] = statistics.median(values) if values else None
            died = [r for r in ok if r.get("server_died")]
            if died:
                entry["server_died"] = len(died)
        summary["%s|%s" % (server, what)] = entry
    return summary


# ---------------------------------------------------------------------------------------------

def make_data(workdir):
    # nginx's worker drops root for nobody: the files and the folders above them must be readable.
    os.chmod(workdir, 0o755)
    data = os.path.join(workdir, "data")
    os.makedirs(data, mode=0o755, exist_ok=True)
    for name, size in (("13k", 13 * 1024), ("1m", MB), ("file", 13 * MB)):
        with open(os.path.join(data, name), "wb") as f:
            f.write(b"x" * size)


def make_scripts(scriptdir):
    with open(os.path.join(HERE, "lua", "report.lua")) as f:
        tail = f.read()
    for name in ("plain.lua", "pipeline.lua", "upload.lua"):
        with open(os.path.join(HERE, "lua", name)) as f:
            head = f.read()
        with open(os.path.join(scriptdir, name), "w") as f:
            f.write(head + "\n" + tail)


def start_database(cluster, results):
    """Start the cluster; the environment that gives the apps its address, or why it failed."""
    try:
        cluster.start()
    except RuntimeError as exc:
        log("database workloads fail: %s" % exc)
        results["postgres"] = {"failure": str(exc)}
        return {"failure": str(exc)}
    version = _command_output([os.path.join(cluster.bindir, "postgres"), "--version"])
    results["postgres"] = {"version": version, "cpu": cluster.cpu}
    log("%s on CPU %s, socket in %s" % (version, cluster.cpu, cluster.dir))
    return {"env": {"BENCH_PG": cluster.conninfo}, "pid": cluster.proc.pid}


def measured_run(server, workload, workdir, logdir, tag, check, measure_run, threads, env=None):
    """Start ``server`` for ``workload`` (``threads``: the pool variants' size; ``env``: more
    environment), wait until it answers, ``check(running)`` (None, or why the answer is wrong),
    then ``measure_run(running)``; always stop it.  Returns the run's "result" (and
    "server_died") or its "failure"."""
    record = {}
    running = Running(server, workload, 0, workdir, logdir, tag, threads, env)
    try:
        why = running.wait_ready() or check(running)
        if why is None:
            record["result"] = measure_run(running)
            if not running.alive():
                record["server_died"] = "exit status %s" % running.proc.returncode
        else:
            record["failure"] = why
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        record["failure"] = str(exc)[-500:]
    finally:
        running.stop()
    return record


def run_matrix(args, servers, cases, workdir, logdir, results, save, db):
    scriptdir = os.path.join(workdir, "lua")
    os.makedirs(scriptdir, exist_ok=True)
    make_scripts(scriptdir)
    verified = {}
    total = args.repeats * sum(1 for w, c in cases for s in servers if s.supports(w))
    done = 0
    for repeat in range(args.repeats):
        for workload_name, conns in cases:
            workload = WORKLOADS[workload_name]
            case = case_name(workload_name, conns)
            for server in servers:
                if not server.supports(workload_name):
                    continue
                done += 1
                key = (server.name, workload_name)
                record = {"server": server.name, "case": case, "workload": workload_name,
                          "conns": conns, "repeat": repeat}
                if workload.uses_db and db.get("failure"):
                    verified[key] = db["failure"]
                if verified.get(key, None) not in (None, True):
                    record["failure"] = verified[key]
                    results["runs"].append(record)
                    continue

                def check(running):  # once per server and workload
                    if key in verified:
                        return None
                    why = verify(running.port, workload, server)
                    verified[key] = True if why is None else "wrong answer: " + why
                    return why

                record.update(measured_run(
                    server, workload, workdir, logdir, "%s_%s_r%d" % (server.name, case, repeat),
                    check, lambda running: measure(running, workload, conns, args.duration,
                                                   args.warmup, scriptdir,
                                                   db.get("pid") if workload.uses_db else None),
                    args.threads, db.get("env") if workload.uses_db else None))
                results["runs"].append(record)
                r = record.get("result")
                if r:
                    log("%3d/%d %-16s %-18s %9.0f req/s  p99 %8.2f ms  %6.1f us/req  "
                        "%7.1f MB peak  %d errors%s%s%s" % (
                            done, total, server.name, case, r["rps"], r["p99_ms"],
                            r["cpu_us_per_req"] or 0, r["peak_rss_kb"] / 1024, r["errors"],
                            "  (wrk %.1f + db %.1f us/req, CPU %s %.0f %% busy)" % (
                                r["client_cpu_us_per_req"], r["db_cpu_us_per_req"], CLIENT_CPU,
                                100 * r["client_cpu_busy"])
                            if r["db_cpu_us_per_req"] is not None else "",
                            "  (others on CPU %s: %.0f %%)" % (SERVER_CPU,
                                                                100 * r["server_cpu_others"])
                            if (r.get("server_cpu_others") or 0) >= 0.02 else "",
                            "  SERVER DIED" if record.get("server_died") else ""))
                else:
                    log("%3d/%d %-16s %-18s FAILED: %s" % (done, total, server.name, case,
                                                            record["failure"]))
                save()


# ---------------------------------------------------------------------------------------------
# ab (ApacheBench) on the static workloads: a new connection per request (HTTP/1.0, no -k),
# latency percentiles over every request, as the issue asks: ab -n 50000 -c 100 -r.

def ab(port, workload, requests):
    cmd = ["taskset", "-c", CLIENT_CPU, "ab", "-n", str(requests), "-c", str(AB_CONNS), "-r",
           "http://127.0.0.1:%d%s" % (port, workload.path)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=600).stdout.decode(errors="replace")

    def number(pattern, default=None):
        match = re.search(pattern, out, re.M)
        return float(match.group(1)) if match else default

    complete = number(r"^Complete requests:\s+(\d+)")
    if complete is None:
        raise RuntimeError("ab printed no summary:\n" + out[-2000:])
    result = {"requests": int(complete), "rps": number(r"^Requests per second:\s+([\d.]+)"),
              "mean_ms": number(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)"),
              "failed_requests": int(number(r"^Failed requests:\s+(\d+)", 0)),
              "non_2xx": int(number(r"^Non-2xx responses:\s+(\d+)", 0))}
    for pct, ms in re.findall(r"^\s+(\d+)%\s+(\d+)", out, re.M):
        result["p%s_ms" % pct] = float(ms)
    return result, out


def measure_ab(running, workload, requests):
    cpu0 = procstat.cpu_seconds(running.pid)
    result, out = ab(running.port, workload, requests)
    cpu1 = procstat.cpu_seconds(running.pid)
    running.logfile.write(out.encode())
    result["cpu_s"] = round(cpu1 - cpu0, 3)
    result["cpu_us_per_req"] = (cpu1 - cpu0) / result["requests"] * 1e6 \
        if result["requests"] else None
    return result


def run_ab(args, servers, cases, workdir, logdir, results, save):
    workloads = [w for w, _ in cases if WORKLOADS[w].static]
    for repeat in range(args.repeats):
        for name in dict.fromkeys(workloads):
            workload = WORKLOADS[name]
            for server in [s for s in servers if s.supports(name)]:
                record = {"server": server.name, "workload": name, "repeat": repeat}
                record.update(measured_run(
                    server, workload, workdir, logdir, "%s_ab_%s_r%d" % (server.name, name, repeat),
                    lambda running: verify(running.port, workload, server),
                    lambda running: measure_ab(running, workload, args.ab_requests),
                    args.threads))
                results["ab"].append(record)
                r = record.get("result")
                if r:
                    log("ab %-16s %-10s %8.0f req/s  p50 %4.0f ms  p99 %4.0f ms  %5.1f us/req  "
                        "%d failed" % (server.name, name, r["rps"], r.get("p50_ms", -1),
                                       r.get("p99_ms", -1), r["cpu_us_per_req"] or 0,
                                       r["failed_requests"] + r["non_2xx"]))
                else:
                    log("ab %-16s %-10s FAILED: %s" % (server.name, name, record["failure"]))
                save()


def run_saturate(args, servers, workdir, logdir, results, save):
    script = os.path.join(HERE, "saturate")
    for server in servers:
        if server.threads is not None:
            continue  # the pool variants: the connection flood is the loop's business
        entry = {}
        for mode in ("idle", "slowloris"):
            tag = "%s_saturate_%s" % (server.name, mode)
            running = Running(server, WORKLOADS["hello"], args.idle_timeout, workdir, logdir, tag,
                              args.threads)
            try:
                why = running.wait_ready()
                if why:
                    entry[mode] = {"failure": why}
                    continue
                cmd = ["taskset", "-c", CLIENT_CPU, sys.executable, script, "--port",
                       str(running.port), "--pid", str(running.pid), "--conns",
                       str(args.saturate_conns), "--mode", mode, "--hold", str(args.slow_hold),
                       "--json"]
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, timeout=300, preexec_fn=_raise_nofile)
                try:
                    entry[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
                except (ValueError, IndexError):
                    entry[mode] = {"failure": (proc.stderr or proc.stdout)[-500:]}
                if not running.alive():
                    entry[mode]["server_died"] = "exit status %s" % running.proc.returncode
            except subprocess.TimeoutExpired:
                entry[mode] = {"failure": "saturate timed out"}
            finally:
                running.stop()
            log("saturate %-16s %-9s %s" % (server.name, mode, report.saturate_line(entry[mode])))
        results["saturate"][server.name] = entry
        save()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 s runs, 1 repeat, the target workloads only (about 11 minutes)")
    parser.add_argument("--servers", help="comma-separated subset (default: all installed)")
    parser.add_argument("--cases", type=lambda s: [parse_case(c) for c in s.split(",")],
                        help="comma-separated WORKLOAD@CONNS, e.g. hello@100,1m@1000")
    parser.add_argument("--duration", type=int, help="seconds per measured run [quick 3, full 10]")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each run [1, 2]")
    parser.add_argument("--repeats", type=int, help="interleaved repeats [quick 1, full 3]")
    parser.add_argument("--saturate-conns", type=int, default=10000,
                        help="idle / slow connections held by bench/saturate [10000]")
    parser.add_argument("--slow-hold", type=int, help="seconds slowloris holds [quick 15, full 30]")
    parser.add_argument("--idle-timeout", type=int, default=120,
                        help="keep-alive timeout given to servers during saturation [120]")
    parser.add_argument("--no-saturate", action="store_true", help="skip bench/saturate")
    parser.add_argument("--no-matrix", action="store_true", help="only bench/saturate (and ab)")
    parser.add_argument("--ab-requests", type=int, default=50000,
                        help="ab -n for the static workloads among the cases [50000]")
    parser.add_argument("--no-ab", action="store_true", help="skip ab on the static workloads")
    parser.add_argument("--out", help="results name (results/NAME.json) [quick or full]")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help="app threads of the pool variants (aiowsgi-threads, granian-threads, "
                        "gunicorn-gthread, waitress-threads) [%d]" % DEFAULT_THREADS)
    parser.add_argument("--threads-only", action="store_true",
                        help="only the thread-pool comparison: aiowsgi and the pool variants, "
                        "hello@100 and the workloads that wait, no saturation")
    args = parser.parse_args(argv)
    quick = args.quick
    if args.threads_only:
        args.no_saturate = True
        args.servers = args.servers or ",".join(
            ["aiowsgi"] + [s.name for s in SERVERS if s.threads is not None])
        args.cases = args.cases or [("hello", 100)] + (QUICK_THREAD_CASES if quick
                                                        else THREAD_CASES)
    args.duration = args.duration or (3 if quick else 10)
    args.warmup = 1 if args.warmup is None and quick else (2 if args.warmup is None else args.warmup)
    args.repeats = args.repeats or (1 if quick else 3)
    args.slow_hold = args.slow_hold or (15 if quick else 30)
    cases = args.cases or (QUICK_CASES if quick else FULL_CASES)
    name = args.out or ("quick" if quick else "full")

    # Also SIGINT: a runner started in the background inherits it ignored.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_sigterm)
    _raise_nofile()
    versions, unavailable, tools = inventory()
    wanted = args.servers.split(",") if args.servers else [s.name for s in SERVERS]
    for n in wanted:
        if n not in BY_NAME:
            parser.error("unknown server %r (known: %s)" % (n, ", ".join(BY_NAME)))
    servers = [BY_NAME[n] for n in wanted if n not in unavailable]
    for n, why in unavailable.items():
        log("unavailable: %s: %s" % (n, why))

    resultsdir = os.path.join(HERE, "results")
    stamp = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    logdir = os.path.join(resultsdir, "raw", "%s-%s" % (name, stamp))
    os.makedirs(logdir, exist_ok=True)
    results = {
        "mode": name, "quick": quick, "started": stamp, "machine": machine(), "tools": tools,
        "versions": versions, "unavailable": unavailable,
        "config": {"duration_s": args.duration, "warmup_s": args.warmup,
                   "repeats": args.repeats, "server_cpu": SERVER_CPU, "client_cpu": CLIENT_CPU,
                   "cases": [case_name(w, c) for w, c in cases], "threads": args.threads,
                   "servers": [s.name for s in servers],
                   "saturate_conns": args.saturate_conns, "slow_hold_s": args.slow_hold,
                   "ab_requests": args.ab_requests, "ab_conns": AB_CONNS},
        "runs": [], "summary": {}, "saturate": {}, "ab": [], "ab_summary": {},
    }
    out_json = os.path.join(resultsdir, name + ".json")

    def save():
        results["summary"] = summarize(results["runs"])
        results["ab_summary"] = summarize(results["ab"], by="workload", keys=None)
        with open(out_json + ".tmp", "w") as f:
            json.dump(results, f, indent=1, sort_keys=True)
        os.replace(out_json + ".tmp", out_json)

    log("servers: %s; %d cases x %d repeats, %d s each; logs in %s" % (
        ", ".join(s.name for s in servers), len(cases), args.repeats, args.duration, logdir))
    interrupted = False
    cluster = None
    if not args.no_matrix and any(WORKLOADS[w].uses_db for w, _ in cases):
        # PostgreSQL shares wrk's CPU: the server's stays its own.  Each server opens one
        # connection per app thread.
        cluster = pg.Cluster(CLIENT_CPU, 2 * args.threads + 20,
                             os.path.join(logdir, "postgres.log"))
    with tempfile.TemporaryDirectory(prefix="aiowsgi-bench-") as workdir:
        make_data(workdir)
        try:
            if not args.no_matrix:
                db = start_database(cluster, results) if cluster else {}
                run_matrix(args, servers, cases, workdir, logdir, results, save, db)
            if not args.no_ab:
                run_ab(args, servers, cases, workdir, logdir, results, save)
            if not args.no_saturate:
                run_saturate(args, servers, workdir, logdir, results, save)
        except KeyboardInterrupt:
            interrupted = True
            log("interrupted: stopping servers, writing what was measured")
        finally:
            stop_all()
            if cluster:
                cluster.stop()
    results["finished"] = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
    results["interrupted"] = interrupted
    save()
    report.write(results, resultsdir)
    log("wrote %s, %s" % (out_json, ", ".join(os.path.join(resultsdir, n)
                                               for n in report.output_names(results))))
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
