"""What the kernel says about a server's process tree: CPU time, current and peak RSS.

A server is the process the runner started plus every descendant (masters fork workers, granian and
nginx run helpers), so each figure is summed over the tree found in /proc at the time of the call.
"""

import os

TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # The command name is in parentheses and may contain spaces: split after the last ')'.
    return data[data.rindex(")") + 2:].split()


def tree(root):
    """The pids of ``root`` and all its live descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry))[1])
        except (OSError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(root):
    """utime + stime of the tree, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in tree(root):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def _field_kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory_kb(root, key):
    """Sum of one /proc/PID/status field (``VmRSS``, ``VmHWM``) over the tree, in KiB.

    Pages a forked worker still shares with its master are counted in both, so for servers with
    a master process this overstates; see ``largest_kb`` and ``pss_kb``."""
    return sum(_field_kb("/proc/%d/status" % pid, key) for pid in tree(root))


def largest_kb(root, key):
    """The largest value of a /proc/PID/status field among the tree's processes (the worker)."""
    return max([_field_kb("/proc/%d/status" % pid, key) for pid in tree(root)] or [0])


def pss_kb(root):
    """Proportional set size of the tree now: shared pages divided among their sharers."""
    return sum(_field_kb("/proc/%d/smaps_rollup" % pid, "Pss") for pid in tree(root))


def cpu_ticks(cpu):
    """(busy, total) clock ticks of one CPU since boot, from /proc/stat (busy: not idle or
    iowait).  Two readings tell how busy the CPU was in between, whoever kept it busy."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                ticks = [int(v) for v in line.split()[1:]]
                return sum(ticks) - ticks[3] - ticks[4], sum(ticks)
    return 0, 0
