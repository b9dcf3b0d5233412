"""A server started the way a user starts one: a script (or ``python -m aiowsgi``) in a
subprocess, its port read from the "Listening on" line, its figures read from /proc.

Used by the tests that run example-style scripts (streaming input, file wrapper)."""

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """A server subprocess; ``port`` is read from its "Listening on" line."""

    def __init__(self, argv, tmp_path, env=None):
        (tmp_path / "logs").mkdir(exist_ok=True)  # apart from the files a test serves
        self.out_path = tmp_path / "logs" / ("server-%d.out" % time.monotonic_ns())
        self.err_path = self.out_path.with_suffix(".err")
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, env=full_env,
                                         cwd=str(tmp_path))
        self.pid = self.proc.pid
        deadline = time.monotonic() + 15
        while True:
            # the start-up line goes to the error log (stderr); scripts may print it too
            found = re.search(r"Listening on http://127\.0\.0\.1:(\d+)",
                              self.out_path.read_text() + self.stderr())
            if found:
                self.port = int(found.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start:\n" + self.stderr())
            time.sleep(0.02)

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    # figures from /proc
    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state): utime and stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def fds(self):
        """The server's open descriptors, as {fd: target}."""
        out = {}
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
            except FileNotFoundError:
                pass
        return out

    def open_files_under(self, directory):
        """Files under ``directory`` the server holds open (its own logs aside)."""
        return sorted(t for t in self.fds().values()
                      if t.startswith(str(directory)) and "/logs/server-" not in t)
