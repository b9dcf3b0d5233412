"""Turn a results JSON into results/table.md and results/plot.png.

Also runnable alone to redraw from a saved run: ``bench/.venv/bin/python bench/report.py
bench/results/quick.json``.  The "targets" section states the ratios the project is judged by, so
they can be quoted without doing arithmetic on noisy absolute numbers.
"""

import json
import os
import sys

REFERENCE = "nginx"  # the C reference, not a WSGI server: left out of "best peer"


def _entry(results, server, case):
    e = results["summary"].get("%s|%s" % (server, case))
    return e if e and not e.get("failed") else None


def _value(results, server, case, key):
    e = _entry(results, server, case)
    return e.get(key) if e else None


def _ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "n/a"


def _cpu_and_p99_rows(results, case, what, peer):
    """Target rows: CPU per request and p99 latency of aiowsgi against peer."""
    rows = []
    for key, label, unit, digits in (("cpu_us_per_req", "CPU per request", "µs", 1),
                                     ("p99_ms", "p99 latency", "ms", 2)):
        a, b = _value(results, "aiowsgi", case, key), _value(results, peer, case, key)
        if a is not None and b is not None:
            rows.append(("%s: %s vs %s" % (what, label, peer), _ratio(a, b),
                         "%s vs %s %s" % (_fmt(a, digits), _fmt(b, digits), unit)))
    return rows


def _best_peer(results, case, key="rps", exclude=("aiowsgi",)):
    """The other WSGI server with the highest ``key`` on ``case``: (name, value)."""
    best = (None, None)
    for server in results["config"]["servers"]:
        if server.startswith(exclude) or server == REFERENCE:  # aiowsgi-threads too
            continue
        v = _value(results, server, case, key)
        if v is not None and (best[1] is None or v > best[1]):
            best = (server, v)
    return best


def _find_case(results, prefix):
    return next((c for c in results["config"]["cases"] if c.startswith(prefix)), None)


def targets(results):
    lines = ["## Targets", "",
             "Ratios are aiowsgi ÷ peer, medians of the runs above.  For CPU per request and RSS "
             "lower is better (ratio < 1 beats the peer); for requests/s higher is better.", ""]
    if not any(k.startswith("aiowsgi") for k in results["summary"]) \
            and "aiowsgi" not in results.get("saturate", {}):
        lines += ["aiowsgi was not measured in this run, so no target can be checked.", ""]
    rows = []
    if not results["summary"]:  # saturation only (--no-matrix)
        results = dict(results, config=dict(results["config"], cases=[]))
    case = _find_case(results, "hello@100")
    if case:
        rows += _cpu_and_p99_rows(results, case, "hello @100 conns", "bjoern")
    case = _find_case(results, "pipelined@")
    if case:
        a = _value(results, "aiowsgi", case, "rps")
        peer, b = _best_peer(results, case)
        rows.append(("pipelined (16 deep): req/s vs fastest other WSGI server (%s)" % peer,
                     _ratio(a, b), "%s vs %s req/s" % (_fmt(a), _fmt(b))))
    case = _find_case(results, "1m@1000")
    if case:
        for key, label, unit in (("rps", "req/s", "req/s"), ("cpu_us_per_req", "CPU per request",
                                                               "µs")):
            a = _value(results, "aiowsgi", case, key)
            b = _value(results, "fastwsgi", case, key)
            rows.append(("1 MB @1000 conns: %s vs fastwsgi" % label, _ratio(a, b),
                         "%s vs %s %s" % (_fmt(a, 1), _fmt(b, 1), unit)))
        for key, label in (("peak_rss_largest_kb", "peak RSS of the worker process"),
                           ("peak_rss_kb", "peak RSS, all processes")):
            a = _value(results, "aiowsgi", case, key)
            b = _value(results, "fastwsgi", case, key)
            rows.append(("1 MB @1000 conns: %s vs fastwsgi" % label, _ratio(a, b),
                         "%s vs %s MB" % (_mb(a), _mb(b))))
    sat = results.get("saturate", {})
    mine = sat.get("aiowsgi", {}).get("idle", {})
    if sat:
        a = mine.get("rss_per_conn_kb")
        for peer in ("bjoern", "fastwsgi"):
            b = sat.get(peer, {}).get("idle", {}).get("rss_per_conn_kb")
            rows.append(("%s idle conns: RSS per connection vs %s" % (
                _thousands(results["config"].get("saturate_conns")), peer), _ratio(a, b),
                "%s vs %s KB" % (_fmt(a, 2), _fmt(b, 2))))
        if mine:
            during = mine.get("probe_during", {})
            rows.append(("idle flood: normal client still served", "%s/%s" % (
                during.get("answered"), during.get("probes")),
                "median %s ms, %s of %s conns held" % (during.get("median_ms"), mine.get("held"),
                                                       mine.get("target"))))
    rows += static_targets(results)
    for framework in ("bottle", "flask", "django"):
        case = _find_case(results, framework + "@100")
        if case:
            a = _value(results, "aiowsgi", case, "rps")
            peer, b = _best_peer(results, case)
            rows.append(("%s hello @100: req/s vs fastest other WSGI server (%s)" % (
                framework, peer), _ratio(a, b), "%s vs %s req/s" % (_fmt(a), _fmt(b))))
            for peer in ("bjoern", "fastwsgi"):
                rows += _cpu_and_p99_rows(results, case, framework + " hello @100", peer)
    rows += thread_targets(results)
    if rows:
        lines += ["| target | ratio | medians |", "|---|---:|---|"]
        lines += ["| %s | %s | %s |" % row for row in rows]
    return lines


def _ratio_row(results, label, case, key, mine, peer, unit):
    a, b = _value(results, mine, case, key), _value(results, peer, case, key)
    digits = 0 if key == "rps" else 1
    return (label, _ratio(a, b), "%s vs %s %s" % (_fmt(a, digits), _fmt(b, digits), unit))


def thread_targets(results):
    """Issue 13's targets: the pool variants at the same thread count, and the pool's cost."""
    rows = []
    threads = results["config"].get("threads")
    case = _find_case(results, "longio@100")
    if case:
        rows.append(_ratio_row(results, "longio @100, %s threads: req/s vs granian (goal ≥ 1)"
                               % threads, case, "rps", "aiowsgi-threads", "granian-threads",
                               "req/s"))
        rows.append(_ratio_row(results, "longio @100, %s threads: CPU per request vs granian "
                               "(goal ≤ 0.8)" % threads, case, "cpu_us_per_req",
                               "aiowsgi-threads", "granian-threads", "µs"))
    for case in results["config"]["cases"]:
        if case.startswith("fortunes@"):
            for peer, name, goal in (("granian-threads", "granian", "1.2"),
                                     ("gunicorn-gthread", "gunicorn gthread", "2")):
                rows.append(_ratio_row(
                    results, "%s, %s threads: req/s vs %s (goal ≥ %s)" % (
                        case.replace("@", " @"), threads, name, goal),
                    case, "rps", "aiowsgi-threads", peer, "req/s"))
            rows.append(client_ceiling_row(results, case))
    case = _find_case(results, "hello@100")
    if case and _entry(results, "aiowsgi-threads4", case):
        rows.append(_ratio_row(results, "hello @100: CPU per request, --threads 4 vs --threads 1 "
                               "(goal ≤ 1.3)", case, "cpu_us_per_req", "aiowsgi-threads4",
                               "aiowsgi", "µs"))
    return rows


def client_ceiling_row(results, case):
    """The most requests/s the client's CPU allows: one second over what a request costs wrk and
    PostgreSQL there (aiowsgi's run), against granian's requests/s.  Below the goal's 1.2, no
    server can reach 1.2 times granian on this machine."""
    mine = _entry(results, "aiowsgi-threads", case) or {}
    wrk, db = mine.get("client_cpu_us_per_req"), mine.get("db_cpu_us_per_req")
    ceiling = 1e6 / (wrk + db) if wrk and db else None
    return ("%s: client CPU's ceiling (1 s ÷ (wrk + PostgreSQL µs/req)) vs granian's req/s"
            % case.replace("@", " @"), _ratio(ceiling, _value(results, "granian-threads", case,
                                                                "rps")),
            "%s vs %s req/s (wrk %s + PostgreSQL %s µs)" % (
                _fmt(ceiling), _fmt(_value(results, "granian-threads", case, "rps")),
                _fmt(wrk, 1), _fmt(db, 1)))


POOL_PEERS = (("granian-threads", "granian"), ("gunicorn-gthread", "gthread"),
              ("waitress-threads", "waitress"))


def thread_summary(results):
    """aiowsgi's pool against the others at the same thread count, one row per case: its
    medians and its ratios to each peer."""
    cases = [c for c in results["config"]["cases"] if _entry(results, "aiowsgi-threads", c)]
    if not cases:
        return []
    lines = ["## Thread pools side by side", "",
             "%s app threads each, one process; ÷ columns are aiowsgi-threads ÷ the peer (req/s: "
             "above 1 is better; CPU: below 1 is better)." % results["config"].get("threads"), "",
             "| case | aiowsgi req/s | " + " | ".join("÷ " + n for _, n in POOL_PEERS)
             + " | p50 / p99 ms (aiowsgi; granian) | aiowsgi CPU µs/req | "
             + " | ".join("÷ " + n for _, n in POOL_PEERS) + " |",
             "|---|---:|" + "---:|" * len(POOL_PEERS) + "---|---:|" + "---:|" * len(POOL_PEERS)]
    for case in cases:
        cells = [case]
        for key, digits in (("rps", 0), ("cpu_us_per_req", 1)):
            mine = _value(results, "aiowsgi-threads", case, key)
            cells.append(_fmt(mine, digits))
            cells += [_ratio(mine, _value(results, peer, case, key)) for peer, _ in POOL_PEERS]
            if key == "rps":
                cells.append("%s / %s; %s / %s" % tuple(
                    _fmt(_value(results, server, case, k), 1)
                    for server in ("aiowsgi-threads", "granian-threads")
                    for k in ("p50_ms", "p99_ms")))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def static_targets(results):
    """Static files: aiowsgi --static against nginx serving the same files with sendfile."""
    rows = []
    for workload, label in (("static13k", "13 KB"), ("static1m", "1 MB")):
        case = _find_case(results, workload + "@100")
        if case:
            for key, what, unit, digits in (
                    ("cpu_us_per_req", "CPU per request", "µs", 1), ("rps", "req/s", "req/s", 0),
                    ("p50_ms", "p50 latency", "ms", 2), ("p99_ms", "p99 latency", "ms", 2),
                    ("errors", "errors", "", 0)):
                a = _value(results, "aiowsgi", case, key)
                b = _value(results, REFERENCE, case, key)
                rows.append(("static %s @100 conns (wrk): %s vs nginx" % (label, what),
                             _ratio(a, b) if key != "errors" else "%s / %s" % (_fmt(a), _fmt(b)),
                             "%s vs %s %s" % (_fmt(a, digits), _fmt(b, digits), unit)))
        ab = results.get("ab_summary", {})
        mine, ref = ab.get("aiowsgi|" + workload), ab.get(REFERENCE + "|" + workload)
        if mine or ref:
            mine, ref = mine or {}, ref or {}
            for key, what, unit in (("cpu_us_per_req", "CPU per request", "µs"),
                                    ("p50_ms", "p50 latency", "ms"),
                                    ("p99_ms", "p99 latency", "ms")):
                a, b = mine.get(key), ref.get(key)
                rows.append(("static %s, ab -c %s -r: %s vs nginx" % (
                    label, results["config"].get("ab_conns", 100), what), _ratio(a, b),
                    "%s vs %s %s" % (_fmt(a, 1), _fmt(b, 1), unit)))
    return rows


def ab_table(results):
    ab = results.get("ab_summary") or {}
    if not ab:
        return []
    cols = ("rps", "mean_ms", "p50_ms", "p66_ms", "p90_ms", "p99_ms", "p100_ms",
            "failed_requests", "non_2xx", "cpu_us_per_req")
    lines = ["## ab on the static files", "",
             "`ab -n %s -c %s -r` (a new HTTP/1.0 connection per request), server on CPU %s, ab on "
             "CPU %s; medians of %s interleaved repeat(s).  Latencies in ms (ab's percentiles, "
             "whole milliseconds); CPU: the server's utime+stime per request." % (
                 _thousands(results["config"].get("ab_requests")),
                 results["config"].get("ab_conns"), results["config"]["server_cpu"],
                 results["config"]["client_cpu"], results["config"]["repeats"]), "",
             "| server | file | req/s | mean | p50 | p66 | p90 | p99 | max | failed | non-2xx "
             "| CPU µs/req |", "|---|---|" + "---:|" * len(cols)]
    for entry in ab.values():
        if entry.get("failed"):
            lines.append("| %s | %s | fail: %s |" % (entry["server"], entry["workload"],
                                                     " ".join(str(entry["failed"]).split())[:200]))
            continue
        cells = [_fmt(entry.get(c), 1 if c in ("mean_ms", "cpu_us_per_req") else 0)
                 for c in cols]
        lines.append("| %s | %s | %s |" % (entry["server"], entry["workload"], " | ".join(cells)))
    return lines + [""]


def _fmt(v, digits=0):
    if v is None:
        return "n/a"
    return "{:,.{d}f}".format(v, d=digits)


def _mb(kb):
    return "n/a" if kb is None else "%.1f" % (kb / 1024)


def _thousands(n):
    return "{:,}".format(n) if n else "?"


METRICS = [
    ("Requests per second", "rps", lambda v: _fmt(v)),
    ("Server CPU time per request (µs, utime+stime of the server's processes)", "cpu_us_per_req",
     lambda v: _fmt(v, 1)),
    ("Server CPU time per MB the client received (µs/MB; the fair measure for big responses "
     "at 1000 connections, where few finish within a run)", "cpu_us_per_mb", lambda v: _fmt(v)),
    ("Throughput received by the client (MB/s)", "mb_per_s", lambda v: _fmt(v, 1)),
    ("Latency p50 (ms)", "p50_ms", lambda v: _fmt(v, 2)),
    ("Latency p99 (ms)", "p99_ms", lambda v: _fmt(v, 2)),
    ("Errors (wrk: connect, read, write, timeout, non-2xx)", "errors", lambda v: _fmt(v)),
    ("Peak RSS (MB, VmHWM summed over the server's processes; a forked worker's pages shared "
     "with its master count twice)", "peak_rss_kb", _mb),
    ("Peak RSS of the largest process (MB, VmHWM: the worker)", "peak_rss_largest_kb", _mb),
    ("PSS at the end of the run (MB, summed over the processes, shared pages split)", "pss_kb",
     _mb),
    ("PostgreSQL CPU time per request (µs, the cluster's processes, on the client's CPU)",
     "db_cpu_us_per_req", lambda v: _fmt(v, 1)),
    ("wrk's CPU time per request (µs, on the client's CPU; with PostgreSQL's, the client "
     "side's cost of a request)", "client_cpu_us_per_req", lambda v: _fmt(v, 1)),
    ("Other processes on the server's CPU (share of the run; the machine is shared: above a "
     "few %, the run was disturbed)", "server_cpu_others",
     lambda v: "n/a" if v is None else "%.0f %%" % (100 * v)),
    ("How busy the client's CPU was (wrk, and PostgreSQL where used; near 100 %, the client "
     "side set the pace, not the server)", "client_cpu_busy",
     lambda v: "n/a" if v is None else "%.0f %%" % (100 * v)),
]


def metric_tables(results):
    cases = results["config"]["cases"]
    servers = results["config"]["servers"]
    notes, lines = {}, []
    for title, key, fmt in METRICS:
        lines += ["### " + title, "", "| server | " + " | ".join(cases) + " |",
                  "|---|" + "---:|" * len(cases)]
        for server in servers:
            cells = []
            for case in cases:
                e = results["summary"].get("%s|%s" % (server, case))
                if e is None:
                    cells.append("")
                elif e.get("failed"):
                    mark = notes.setdefault((server, case), len(notes) + 1)
                    cells.append("fail[%d]" % mark)
                else:
                    cell = fmt(e.get(key))
                    if e.get("server_died"):
                        mark = notes.setdefault((server, case), len(notes) + 1)
                        cell += " died[%d]" % mark
                    cells.append(cell)
            lines.append("| %s | %s |" % (server, " | ".join(cells)))
        lines.append("")
    if notes:
        lines += ["Failures:", ""]
        for (server, case), mark in sorted(notes.items(), key=lambda kv: kv[1]):
            e = results["summary"]["%s|%s" % (server, case)]
            why = e.get("failed") or "server process died during %s run(s)" % e.get("server_died")
            lines.append("%d. %s, %s: %s" % (mark, server, case, " ".join(str(why).split())[:300]))
        lines.append("")
    return lines


def saturate_line(entry):
    if not entry:
        return "n/a"
    if entry.get("failure"):
        return "failed: " + " ".join(entry["failure"].split())[:200]
    during = entry.get("probe_during", {})
    probe = "probe %s/%s answered, median %s ms, max %s ms" % (
        during.get("answered"), during.get("probes"), during.get("median_ms"), during.get("max_ms"))
    if entry.get("mode") == "idle":
        return "%s/%s held, %s open after, %s KB RSS/conn; %s" % (
            entry.get("held"), entry.get("target"), entry.get("open_after_probe"),
            entry.get("rss_per_conn_kb"), probe)
    return "%s/%s held, %s cut by server (median after %s s); %s" % (
        entry.get("held"), entry.get("target"), entry.get("cut_by_server"),
        entry.get("median_cut_after_s"), probe)


def saturate_table(results):
    sat = results.get("saturate") or {}
    if not sat:
        return []
    lines = ["## Connection flood (bench/saturate)", "",
             "idle: %s keep-alive connections, one request each, then held; slowloris: as many "
             "connections sending one header line per second for %s s.  A probe is a fresh "
             "connection with one GET (5 s timeout).  *No keep-alive*: connections the server "
             "answered with `Connection: close` (the client then closes them, as clients do).  "
             "*Open after*: held connections the server had not closed when the probes were "
             "done." % (
                 _thousands(results["config"].get("saturate_conns")),
                 results["config"].get("slow_hold_s")), "",
             "| server | idle held | no keep-alive | open after | RSS/conn (KB) | idle probe ok | idle probe median (ms) "
             "| slow held | cut by server | cut after (s) | slow probe ok | slow probe max (ms) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for server, entry in sat.items():
        idle, slow = entry.get("idle", {}), entry.get("slowloris", {})
        idle_p, slow_p = idle.get("probe_during", {}), slow.get("probe_during", {})
        cells = [
            "fail" if idle.get("failure") else "%s" % idle.get("held"),
            idle.get("declined_keepalive"), idle.get("open_after_probe"), idle.get("rss_per_conn_kb"),
            "%s/%s" % (idle_p.get("answered"), idle_p.get("probes")) if idle_p else "",
            idle_p.get("median_ms"),
            "fail" if slow.get("failure") else slow.get("held"), slow.get("cut_by_server"),
            slow.get("median_cut_after_s"),
            "%s/%s" % (slow_p.get("answered"), slow_p.get("probes")) if slow_p else "",
            slow_p.get("max_ms"),
        ]
        lines.append("| %s | %s |" % (server, " | ".join("" if c is None else str(c)
                                                          for c in cells)))
    lines.append("")
    return lines


def header(results):
    cfg, m = results["config"], results["machine"]
    lines = ["# aiowsgi benchmark: %s run of %s" % (results["mode"], results["started"]), "",
             "Machine: %s, %s CPUs, Linux %s; load average at start %s.  Server on CPU %s, wrk on "
             "CPU %s (taskset), one worker each; %d s per run after %d s warm-up, %d interleaved "
             "repeat(s), medians shown.%s" % (
                 m.get("cpu"), m.get("cpus"), m.get("kernel"),
                 ", ".join("%.2f" % x for x in m.get("loadavg_at_start", [])),
                 cfg["server_cpu"], cfg["client_cpu"], cfg["duration_s"], cfg["warmup_s"],
                 cfg["repeats"], "  **Interrupted: partial results.**"
                 if results.get("interrupted") else ""),
             "", "Versions: " + "; ".join("%s %s" % kv for kv in sorted(results["versions"].items()))
             + "; " + "; ".join("%s %s" % kv for kv in sorted(results["tools"].items())) + "."]
    if cfg.get("threads"):
        lines += ["", "Thread-pool variants (`*-threads`, `gunicorn-gthread`): %d app threads each, "
                  "one process (`aiowsgi-threads4`: 4).%s" % (cfg["threads"], _postgres(results))]
    if results.get("unavailable"):
        lines += ["", "Unavailable: " + "; ".join(
            "%s (%s)" % (k, " ".join(str(v).split())[:160])
            for k, v in sorted(results["unavailable"].items())) + "."]
    lines += ["", "Cases are WORKLOAD@CONNECTIONS; `upload100m` sends 100 MB chunked per request "
              "(MB/s = req/s × 100); `pipelined@100x16` keeps 16 requests in flight per "
              "connection.  Numbers from a shared, noisy machine: compare ratios, not absolutes.",
              ""]
    return lines


def _postgres(results):
    db = results.get("postgres")
    if not db:
        return ""
    if db.get("failure"):
        return "  PostgreSQL failed to start: %s." % " ".join(db["failure"].split())[:200]
    return ("  Database workloads: %s, its own cluster on a unix socket, pinned to CPU %s with wrk "
            "(its CPU time is not the server's)." % (db.get("version"), db.get("cpu")))


def write_table(results, path):
    lines = header(results) + targets(results) + [""]
    if results["summary"]:
        lines += thread_summary(results)
        lines += ["## Results", ""] + metric_tables(results)
    lines += ab_table(results)
    lines += saturate_table(results)
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def write_plot(results, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    cases = results["config"]["cases"]
    servers = [s for s in results["config"]["servers"]
               if any(_entry(results, s, c) for c in cases)]
    if not servers:
        return False
    fig, axes = plt.subplots(2, 1, figsize=(max(10, 1.6 * len(cases) + 3), 9), sharex=True)
    width = 0.8 / len(servers)
    colors = plt.get_cmap("tab10" if len(servers) <= 10 else "tab20")
    for ax, key, label in ((axes[0], "rps", "requests/s (log)"),
                           (axes[1], "cpu_us_per_req", "server CPU µs per request (log)")):
        for i, server in enumerate(servers):
            xs, ys = [], []
            for j, case in enumerate(cases):
                v = _value(results, server, case, key)
                if v:
                    xs.append(j - 0.4 + width * (i + 0.5))
                    ys.append(v)
            ax.bar(xs, ys, width, label=server, color=colors(i % colors.N),
                   edgecolor="black" if server.startswith("aiowsgi") else None, linewidth=1.2)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", which="major", alpha=0.3)
    axes[1].set_xticks(range(len(cases)))
    axes[1].set_xticklabels(cases, rotation=20, ha="right")
    axes[0].legend(ncol=min(5, len(servers)), fontsize=8, loc="upper right")
    axes[0].set_title("aiowsgi vs peers, %s run, one worker on one CPU (medians)" % results["mode"])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def output_names(results):
    """table.md and plot.png for the quick and full runs; NAME-table.md etc. for --out NAME."""
    mode = results.get("mode")
    prefix = "" if mode in ("quick", "full") else mode + "-"
    return prefix + "table.md", prefix + "plot.png"


def write(results, resultsdir):
    table, plot = output_names(results)
    write_table(results, os.path.join(resultsdir, table))
    write_plot(results, os.path.join(resultsdir, plot))


if __name__ == "__main__":
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "results", "quick.json")
    with open(src) as f:
        data = json.load(f)
    write(data, os.path.dirname(os.path.abspath(src)))
