"""Hosts of their own for a test of several machines: each a network namespace joined to this
one by a veth pair (``ip netns``, as root), made here and removed by :meth:`Hosts.close`; or,
where namespaces cannot be made (not root, no ``ip``, a chroot that refuses them), a loopback
address of its own (any of 127.0.0.0/8 is this machine's on Linux).  :attr:`Hosts.mode` says
which (``"netns"`` or ``"loopback"``), for the test to report.

A host has the address a server there binds (``address``), and the words to put in front of a
command to run it there (``prefix``: ``ip netns exec NAME``, or nothing).  Names and addresses
are made from this process's id, so that two runs side by side do not meet: namespaces
``aw<pid>-<n>``, veth pairs ``aw<pid>h<n>a``/``b`` on 198.18.0.0/15 (RFC 2544's block for
benchmarks, on no real network), one /30 per host.
"""

import os
import shutil
import subprocess

from tests.support.waits import scaled


class Host:
    def __init__(self, index, address, prefix=(), netns=None):
        self.index = index
        self.address = address
        self.prefix = list(prefix)
        self.netns = netns

    def __repr__(self):
        return "<Host %d %s%s>" % (self.index, self.address,
                                   " in %s" % self.netns if self.netns else "")


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=scaled(20))


class Hosts:
    """``count`` hosts; ``mode`` is ``"netns"`` or ``"loopback"``, and ``why`` says why
    namespaces could not be used."""

    def __init__(self, count):
        self.hosts = []
        self.why = None
        self._made = []  # namespaces to remove
        pid = os.getpid()
        self._octet = pid % 250  # 198.18.<octet>.<4n + 1|2>
        self._tag = "aw%d" % pid
        try:
            for i in range(count):
                self.hosts.append(self._namespace(i))
            self.mode = "netns"
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            self.close()
            self.why = str(exc).strip() or type(exc).__name__
            self.mode = "loopback"
            self.hosts = [Host(i, "127.%d.0.%d" % (20 + pid % 200, i + 2)) for i in range(count)]

    def __iter__(self):
        return iter(self.hosts)

    def __getitem__(self, index):
        return self.hosts[index]

    def _namespace(self, i):
        if os.geteuid() != 0:
            raise RuntimeError("network namespaces need root")
        if not shutil.which("ip"):
            raise RuntimeError("no ip command (iproute2)")
        name, outer, inner = "%s-%d" % (self._tag, i), "%sh%da" % (self._tag, i), \
            "%sh%db" % (self._tag, i)
        near, far = "198.18.%d.%d" % (self._octet, 4 * i + 1), \
            "198.18.%d.%d" % (self._octet, 4 * i + 2)
        steps = [("netns", "add", name)]
        steps += [("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", name),
                  ("addr", "add", near + "/30", "dev", outer), ("link", "set", outer, "up"),
                  ("-n", name, "addr", "add", far + "/30", "dev", inner),
                  ("-n", name, "link", "set", inner, "up"), ("-n", name, "link", "set", "lo",
                                                             "up")]
        for step in steps:
            result = _ip(*step)
            if step[:2] == ("netns", "add") and result.returncode == 0:
                self._made.append(name)
            if result.returncode != 0:
                raise RuntimeError("ip %s: %s" % (" ".join(step), result.stderr.strip()))
        probe = subprocess.run(["ip", "netns", "exec", name, "true"], capture_output=True,
                               text=True, timeout=scaled(20))
        if probe.returncode != 0:
            raise RuntimeError("ip netns exec: %s" % probe.stderr.strip())
        return Host(i, far, prefix=["ip", "netns", "exec", name], netns=name)

    def close(self):
        """Remove the namespaces (their veth pairs go with them)."""
        for name in self._made:
            _ip("netns", "del", name)
        self._made = []
