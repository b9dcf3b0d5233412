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


def memory_kb(root, key):
    """Sum of one /proc/PID/status field (``VmRSS``, ``VmHWM``) over the tree, in KiB."""
    total = 0
    for pid in tree(root):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total
