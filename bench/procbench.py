# SPDX-License-Identifier: GPL-2.0-or-later
"""The /proc workloads: veneer-procfs against lxcfs, read from many containers.

A container here is a reader (bench/reader.c) in its own pid and mount
namespace and its own cgroup in every v1 controller, with the daemon's
meminfo, cpuinfo and stat bind-mounted over its /proc files. All readers of a
run start each file's phase together, loop open/read/close for a fixed time and
report their counts; the daemon's utime+stime is sampled around each phase.
"""
import os
import select
import shutil
import signal
import subprocess
import time

from reaper import Daemon, remove_cgroup, tree_cpu_seconds, wait_mounted
from union_workloads import Row

PROC_TARGETS = ["veneer-procfs", "lxcfs"]
PROC_REFERENCE = "lxcfs"
PROC_FILES = ["meminfo", "cpuinfo", "stat"]
CONTROLLERS = ["memory", "cpu", "cpuacct", "cpuset", "pids"]
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def proc_rows(containers):
    rows = []
    for n in containers:
        for f in PROC_FILES:
            name = f"/proc/{f} reads, {n} container{'s' if n != 1 else ''}"
            rows.append(Row(f"P.{f}.{n}.rate", "P", name, "n/a", "reads/s", "higher"))
            rows.append(Row(f"P.{f}.{n}.cpu", "P", name + ": daemon CPU", "n/a",
                            "ms CPU/1k reads", "lower"))
    return rows


class ProcBench:
    def __init__(self, workspace, reaper, sizes, veneer_build, log):
        self.ws = workspace
        self.reaper = reaper
        self.s = sizes
        self.log = log
        self.veneer = os.path.join(veneer_build, "procfs", "veneer-procfs")
        self.logs = os.path.join(workspace, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.reader = None
        self.cg_name = f"veneer-bench-{os.getpid()}"
        self.cg_ready = 0
        self.n = 0

    def binary(self, target):
        return self.veneer if target == "veneer-procfs" else shutil.which("lxcfs") or "lxcfs"

    def missing(self, target):
        b = self.binary(target)
        if not (os.path.isfile(b) and os.access(b, os.X_OK)):
            return f"{b} not found"
        if not shutil.which("unshare"):
            return "unshare not found"
        for c in CONTROLLERS:
            if not os.path.isdir(f"/sys/fs/cgroup/{c}"):
                return f"no cgroup v1 controller {c}"
        return None

    # --- setup ---------------------------------------------------------------
    def build_reader(self):
        if self.reader:
            return self.reader
        out = os.path.join(self.ws, "bin", "veneer-bench-reader")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out,
                        os.path.join(BENCH_DIR, "reader.c")], check=True, timeout=120)
        self.reader = out
        return out

    def cgroups(self, n):
        """Make container cgroups c0..c<n-1> in every controller (kept until the end)."""
        if self.cg_ready == 0:
            for c in CONTROLLERS:
                p = f"/sys/fs/cgroup/{c}/{self.cg_name}"
                self.reaper.push(f"cgroup {p}", remove_cgroup, p)
                os.makedirs(p, exist_ok=True)
                if c == "cpuset":
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        _copy(f"/sys/fs/cgroup/cpuset/{f}", f"{p}/{f}")
        for i in range(self.cg_ready, n):
            for c in CONTROLLERS:
                p = f"/sys/fs/cgroup/{c}/{self.cg_name}/c{i}"
                os.makedirs(p, exist_ok=True)
                if c == "memory":
                    _write(f"{p}/memory.limit_in_bytes", str(512 << 20))
                elif c == "cpu":
                    _write(f"{p}/cpu.cfs_period_us", "100000")
                    _write(f"{p}/cpu.cfs_quota_us", "200000")  # 2 CPUs: virtualized, not throttling
                elif c == "cpuset":
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        _copy(f"/sys/fs/cgroup/cpuset/{self.cg_name}/{f}", f"{p}/{f}")
                elif c == "pids":
                    _write(f"{p}/pids.max", "64")
        self.cg_ready = max(self.cg_ready, n)

    def start_daemon(self, target):
        self.n += 1
        mnt = os.path.join(self.ws, "runs", f"{target}-{self.n}")
        os.makedirs(mnt, exist_ok=True)
        log = os.path.join(self.logs, f"{target}-{self.n}.log")
        if target == "lxcfs":
            argv = [self.binary(target), "-f", "--enable-cfs", "-l", "-p", mnt + ".pid", mnt]
        else:
            argv = [self.binary(target), "-f", mnt]
        d = Daemon(self.reaper, argv, log)
        umount_token = self.reaper.push(f"{target} mount {mnt}", _umount_quiet, mnt)
        try:
            wait_mounted(mnt, d)
            files = _find_files(mnt)
        except BaseException:
            self.reaper.pop(umount_token)
            self.reaper.pop(d.token)
            raise
        return d, mnt, files, umount_token

    def stop_daemon(self, d, mnt, umount_token):
        self.reaper.pop(umount_token)
        # lxcfs lingers ~5 s after its unmount (a sleeping thread): unmounted is done.
        if d.wait(1) is None:
            d.stop()
        self.reaper.pop(d.token)
        shutil.rmtree(mnt, ignore_errors=True)
        pidfile = mnt + ".pid"  # lxcfs -p; it leaves the file behind when stopped by a signal
        if os.path.exists(pidfile):
            os.unlink(pidfile)

    # --- one run: n containers x 3 files ----------------------------------------
    def run(self, target, n, timeout):
        reader = self.build_reader()
        self.cgroups(n)
        d, mnt, files, utok = self.start_daemon(target)
        procs = []
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        kill_token = self.reaper.push("reader containers", _kill_all, procs)
        try:
            binds = " && ".join(f"mount --bind {files[f]} /proc/{f}" for f in PROC_FILES)
            for i in range(n):
                script = (f"{binds} && exec {reader} {go_r} {res_w} {self.s.proc_seconds:g} "
                          + " ".join(f"/proc/{f}" for f in PROC_FILES))
                procs.append(subprocess.Popen(
                    ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", "--",
                     "/bin/sh", "-c", script],
                    stdin=subprocess.DEVNULL, pass_fds=(go_r, res_w), start_new_session=True,
                    preexec_fn=_joiner(self.cg_name, i)))
            os.close(go_r)
            os.close(res_w)
            go_r = res_w = -1
            lines = _Lines(res_r, timeout)
            for _ in range(n):
                ln = lines.next()
                if ln != "ready":
                    raise RuntimeError(f"reader container: {ln}")
            out = {}
            for f in PROC_FILES:
                cpu0 = tree_cpu_seconds(d.pid)
                os.write(go_w, b"g" * n)
                rate = 0.0
                reads = 0
                for _ in range(n):
                    parts = lines.next().split()
                    if parts[0] == "error":
                        raise RuntimeError(f"reading /proc/{f} in a container failed: "
                                           f"{os.strerror(int(parts[2]))}")
                    cnt, ns = int(parts[0]), int(parts[1])
                    reads += cnt
                    rate += cnt / (ns / 1e9)
                cpu = tree_cpu_seconds(d.pid) - cpu0
                if not d.alive():
                    raise RuntimeError(f"{target} exited: {d.output(300)}")
                out[f"P.{f}.{n}.rate"] = rate
                out[f"P.{f}.{n}.cpu"] = cpu * 1000 / (reads / 1000)
            deadline = time.monotonic() + 30
            for p in procs:
                p.wait(max(0.1, deadline - time.monotonic()))
                if p.returncode != 0:
                    raise RuntimeError(f"a reader container exited {p.returncode}")
            return out
        finally:
            for fd in (go_r, go_w, res_r, res_w):
                if fd >= 0:
                    os.close(fd)
            self.reaper.pop(kill_token)
            self.stop_daemon(d, mnt, utok)


class _Lines:
    """Lines from the readers' shared result pipe, with an overall deadline."""

    def __init__(self, fd, timeout):
        self.fd = fd
        self.buf = b""
        self.deadline = time.monotonic() + timeout

    def next(self):
        while b"\n" not in self.buf:
            left = self.deadline - time.monotonic()
            r, _, _ = select.select([self.fd], [], [], max(0, left))
            if not r:
                raise RuntimeError("reader containers did not answer in time")
            chunk = os.read(self.fd, 4096)
            if not chunk:
                raise RuntimeError("reader containers exited early")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()


def _joiner(cg_name, i):
    def join():
        pid = str(os.getpid())
        for c in CONTROLLERS:
            with open(f"/sys/fs/cgroup/{c}/{cg_name}/c{i}/cgroup.procs", "w") as f:
                f.write(pid)
    return join


def _kill_all(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def _umount_quiet(mnt):
    subprocess.run(["umount", mnt], capture_output=True, timeout=60)
    if os.path.ismount(mnt):
        subprocess.run(["umount", "-l", mnt], capture_output=True, timeout=60)


def _find_files(mnt, timeout=10.0):
    """Where the daemon serves meminfo/cpuinfo/stat: <mnt>/proc/<f> (lxcfs layout) or <mnt>/<f>."""
    deadline = time.monotonic() + timeout
    while True:
        for base in (os.path.join(mnt, "proc"), mnt):
            paths = {f: os.path.join(base, f) for f in PROC_FILES}
            if all(os.path.isfile(p) for p in paths.values()):
                return paths
        if time.monotonic() > deadline:
            raise RuntimeError(f"no meminfo/cpuinfo/stat under {mnt}")
        time.sleep(0.05)


def _write(path, value):
    with open(path, "w") as f:
        f.write(value)


def _copy(src, dst):
    with open(src) as f:
        _write(dst, f.read().strip())


def proc_version(target, veneer_bin):
    from union_targets import first_line
    if target == "lxcfs":
        return "lxcfs " + first_line(["lxcfs", "--version"]).strip('"')
    return first_line([veneer_bin, "--version"])
