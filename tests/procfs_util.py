# SPDX-License-Identifier: GPL-2.0-or-later
"""Containers for the veneer-procfs suites: a process tree in cgroup v1
children, new pid + mount namespaces (unshare), /proc and the cpu files
bind-mounted from a veneer-procfs mount. Everything goes through the Harness
so it is undone even when a test fails."""
import os
import signal
import subprocess
import time

from veneer_harness import build_path

PROC_FILES = ("meminfo", "cpuinfo", "stat", "uptime", "loadavg", "swaps", "diskstats")
CPU_FILES = ("online", "possible", "present")
MiB = 1 << 20


def procfs_bin():
    return build_path("procfs/veneer-procfs")


def start_procfs(h, mnt, opts=(), binary=None):
    """Start (or restart: attach to) veneer-procfs on mnt; returns the Daemon."""
    try:
        os.makedirs(mnt, exist_ok=True)
    except OSError:
        pass  # a dead FUSE mount there cannot even be stat()ed
    return h.start_daemon([binary or procfs_bin(), "-f", *opts, mnt])


def mount_procfs(h, mnt=None, opts=(), binary=None):
    """A veneer-procfs mount registered for teardown (umount ends worker and holder)."""
    from veneer_harness import Mount
    mnt = mnt or h.path("procfs")
    d = start_procfs(h, mnt, opts, binary)
    m = Mount(mnt, d)
    h.defer(h.umount, m)
    return m


class Container:
    """pid 1 of new pid+mount namespaces in the given cgroups, with the served files bound."""

    def __init__(self, h, mnt, cgroups, charge_tmpfs=False):
        self.h = h
        self.cgroups = cgroups  # controller -> cgroup dir
        self.ready = h.path(f"ready-{id(self)}")
        script = ["set -e", "mount -t proc proc /proc"]
        for f in PROC_FILES:
            script.append(f"mount --bind {mnt}/proc/{f} /proc/{f}")
        for f in CPU_FILES:
            script.append(f"mount --bind {mnt}/sys/devices/system/cpu/{f} "
                          f"/sys/devices/system/cpu/{f}")
        if charge_tmpfs:
            script.append("mkdir -p /mnt && mount -t tmpfs -o size=512m charge /mnt")
        script.append(f"touch {self.ready}")
        script.append("exec sleep 100000")
        join = "".join(f"echo $$ > {d}/cgroup.procs; " for d in cgroups.values())
        self.proc = subprocess.Popen(
            ["sh", "-c", join + 'exec unshare -pmf --propagation private sh -c "$0"',
             "\n".join(script)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        h.defer(self.stop)
        deadline = time.time() + 20
        while not os.path.exists(self.ready):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("container did not start: " +
                                   self.proc.stderr.read().decode(errors="replace"))
            time.sleep(0.02)
        self.init = self._find_init()
        self.born = time.time()

    def _find_init(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def argv(self, *cmd):
        """The argv that runs cmd inside the container, as a member of its cgroups."""
        join = "".join(f"echo $$ > {d}/cgroup.procs; " for d in self.cgroups.values())
        return ["sh", "-c", join + f'exec nsenter -t {self.init} -m -p -- "$@"', "sh", *cmd]

    def popen(self, *cmd, **kw):
        """Start cmd inside the container (its own session); killed and reaped at cleanup."""
        proc = subprocess.Popen(self.argv(*cmd), start_new_session=True, **kw)

        def kill():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            for f in (proc.stdin, proc.stdout, proc.stderr):
                if f:
                    f.close()
        self.h.defer(kill)
        return proc

    def run(self, cmd, check=True, timeout=30, input=None):
        """Run cmd (a shell string) inside the container, as a member of its cgroups."""
        r = subprocess.run(self.argv("sh", "-c", cmd), capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{cmd!r} failed ({r.returncode}): {r.stderr}")
        return r.stdout

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                os.kill(self.init, signal.SIGKILL)
            except (ProcessLookupError, AttributeError):
                pass
            self.proc.wait(10)
        self.proc.stderr.close()


def limited_cgroups(h, mem=None, quota=None, cpus=None, extra=()):
    """cgroup v1 children: memory limit (bytes), CPU quota (fraction), cpuset (list string)."""
    ctrls = ["memory", "cpu", "cpuacct", "cpuset", "blkio", *extra]
    settings = {}
    if mem is not None:
        settings[("memory", "memory.limit_in_bytes")] = mem
    if quota is not None:
        settings[("cpu", "cpu.cfs_period_us")] = 100000
        settings[("cpu", "cpu.cfs_quota_us")] = int(quota * 100000)
    _, paths = h.cgroup_v1(ctrls, settings=settings)
    if cpus is not None:
        with open(os.path.join(paths["cpuset"], "cpuset.cpus"), "w") as f:
            f.write(cpus)
    return paths


def meminfo_kb(text, key):
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def free_b(text):
    """`free -b` -> dict of the Mem: row."""
    lines = text.splitlines()
    head = lines[0].split()
    mem = next(line for line in lines if line.startswith("Mem:")).split()[1:]
    return dict(zip(head, (int(x) for x in mem)))
