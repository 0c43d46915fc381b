# SPDX-License-Identifier: GPL-2.0-or-later
"""The union filesystem workloads (1-10 of issue 6, 11-12 and the busy host of issue 13),
each timed on one mounted Run.

A workload declares its table rows (Row) and returns {row key: value} for one
run. Each checks its own result (bytes read, entries listed, exit codes) so a
target that answers wrongly fails instead of looking fast. Timings cover the
operation only; setup, checks and undoing changes in the plain control are not
timed.
"""
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import threading
import time
from dataclasses import dataclass

from podbench import POD_TARGETS
from reaper import tree_fd_count, tree_status_kib

MIB = 1 << 20


@dataclass(frozen=True)
class Row:
    key: str          # unique, e.g. "1.cold"
    wid: str          # workload number as in the issue
    name: str
    cache: str        # cold / warm / n/a
    unit: str
    better: str       # "higher", "lower", or "" (no ratio)
    daemon_only: bool = False
    targets: tuple = ()  # the targets the row applies to (empty: all)

    def applies(self, target):
        return not self.targets or target in self.targets


class WithOptions:
    """A workload whose mounts get extra -o options, per target (e.g. metacopy=on)."""

    def __init__(self, fn, mount_opts):
        self.fn = fn
        self.mount_opts = mount_opts
        self.__name__ = fn.__name__

    def __call__(self, run):
        return self.fn(run)


class NoMount:
    """A workload that mounts for itself (podman does): run_union only names the target."""

    no_mount = True

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__

    def __call__(self, run):
        return self.fn(run)


class Busy:
    """The same workload while a fixed CPU load runs (stress-ng, one process per CPU
    unless sized otherwise), started after the mount and stopped after the workload, the
    same for every target; its row keys get a "busy." prefix."""

    def __init__(self, fn, procs, timeout):
        self.fn = fn
        self.procs = procs
        self.timeout = timeout
        self.mount_opts = getattr(fn, "mount_opts", {})
        self.__name__ = "busy_" + fn.__name__

    def __call__(self, run):
        load = subprocess.Popen(["stress-ng", "--cpu", str(self.procs), "--cpu-method", "int64",
                                 "--timeout", f"{int(self.timeout)}s", "--quiet"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            time.sleep(0.2)  # the workers are up and spinning
            if load.poll() is not None:
                raise RuntimeError(f"stress-ng exited {load.returncode}: "
                                   f"{load.stderr.read().decode(errors='replace')[:300]}")
            out = self.fn(run)
        finally:
            if load.poll() is None:
                os.killpg(load.pid, signal.SIGTERM)
            try:
                load.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(load.pid, signal.SIGKILL)
                load.wait()
            load.stderr.close()
        return {"busy." + k: v for k, v in out.items()}


def busy_rows(rows):
    return [Row("busy." + r.key, "busy", r.name + " (busy host)", r.cache, r.unit, r.better)
            for r in rows]


# The rows the busy-host variant repeats under a CPU load.
BUSY_WORKLOADS = ("3", "7", "9")

# The chmod row runs both with the kernel's metadata-only copy-up (fuse-overlayfs has none).
METACOPY = {"kernel-overlay": "metacopy=on", "veneer-unionfs": "metacopy=on",
            "veneer-uring": "metacopy=on", "veneer-devfuse": "metacopy=on"}


def _timed(fn, *args, **kw):
    t0 = time.perf_counter()
    r = fn(*args, **kw)
    return time.perf_counter() - t0, r


def read_all(path, bufsize=MIB):
    buf = bytearray(bufsize)
    n = 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while True:
            r = os.readv(fd, [buf])
            if r == 0:
                return n
            n += r
    finally:
        os.close(fd)


def run_cmd(argv, timeout, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited {r.returncode}: "
                           f"{r.stderr.decode(errors='replace').strip()[:300]}")
    return r.stdout


def count_lines(argv, timeout):
    out = run_cmd(argv, timeout)
    return out.count(b"\n")


def check(cond, what):
    if not cond:
        raise RuntimeError(f"wrong result: {what}")


def _data_bytes(path):
    """Bytes of file data a regular file holds on disk: its data extents (SEEK_DATA/SEEK_HOLE),
    so a sparse metadata-only copy counts 0 even where its xattrs take a block of their own."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        total, pos = 0, 0
        while True:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    return total
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            total += end - start
            pos = end
    finally:
        os.close(fd)


def upper_bytes(run):
    """Bytes of file data in the run's upper directory (0 for the plain control)."""
    if not run.upper:
        return 0
    total = 0
    for dp, dns, fns in os.walk(run.upper):
        for n in fns:
            p = os.path.join(dp, n)
            try:
                if stat.S_ISREG(os.lstat(p).st_mode):
                    total += _data_bytes(p)
            except OSError:
                pass
    return total


class Workloads:
    def __init__(self, layers, sizes, timeout, trash=None, pod=None):
        self.trash = trash
        self.pod = pod
        self.layers = layers
        self.s = sizes
        self.timeout = timeout

    # name -> (rows, layer setup returning (lowers, plain_root), function)
    def table(self):
        base = [
            ("1", [Row("1.cold", "1", "seq read 1 big file", "cold", "MiB/s", "higher"),
                   Row("1.warm", "1", "seq read 1 big file", "warm", "MiB/s", "higher")],
             self.main_layers, self.w1_seqread),
            ("2", [Row("2", "2", "seq write new big file + fsync", "n/a", "MiB/s", "higher")],
             self.main_layers, self.w2_seqwrite),
            ("3", [Row("3.create", "3", "create files", "warm", "ops/s", "higher"),
                   Row("3.stat", "3", "stat files", "warm", "ops/s", "higher"),
                   Row("3.unlink", "3", "unlink files", "warm", "ops/s", "higher")],
             self.main_layers, self.w3_metadata),
            ("4", [Row("4.find.cold", "4", "find over lower tree", "cold", "s", "lower"),
                   Row("4.find.warm", "4", "find over lower tree", "warm", "s", "lower"),
                   Row("4.du.cold", "4", "du -s over lower tree", "cold", "s", "lower"),
                   Row("4.du.warm", "4", "du -s over lower tree", "warm", "s", "lower")],
             self.main_layers, self.w4_walk),
            ("5", [Row("5", "5", "ls -f of dir merged from 2 layers", "warm", "s", "lower")],
             self.merge_layers, self.w5_ls),
            ("6", [Row("6.append", "6", "copy-up: append 1 byte to big lower file", "warm",
                       "s", "lower")],
             self.main_layers, self.w6_append),
            ("6", [Row("6.chmod", "6", "copy-up: chmod of big lower file (metacopy=on: "
                       "kernel, veneer)", "warm", "s", "lower"),
                   Row("6.chmod.data", "6", "file data written to upper by that chmod (metacopy=on: "
                       "kernel, veneer)", "n/a", "MiB", "")],
             self.main_layers, WithOptions(self.w6_chmod, METACOPY)),
            ("7", [Row("7", "7", "untar into the mount", "warm", "s", "lower")],
             self.main_layers, self.w7_untar),
            ("8", [Row("8.j1", "8", "fio 4k random read, 1 job", "warm", "IOPS", "higher"),
                   Row("8.j4", "8", "fio 4k random read, 4 jobs", "warm", "IOPS", "higher")],
             self.main_layers, self.w8_fio),
            ("9", [Row("9", "9", "cp -a of lower tree inside the mount", "warm", "s", "lower")],
             self.main_layers, self.w9_cp),
            ("10", [Row("10.walk", "10", "find + du -s over big tree", "cold", "s", "lower"),
                    Row("10.rss", "10", "daemon peak RSS (VmHWM) after the walk", "n/a", "MiB",
                        "", True),
                    Row("10.fds", "10", "daemon peak open fds during the walk", "n/a", "fds",
                        "", True)],
             self.huge_layers, self.w10_huge),
            # kernel-overlay: podman's native overlay driver; the others: its mount_program.
            ("11", [Row("11.total", "11", "podman build + podman run", "n/a", "s",
                        "lower", targets=POD_TARGETS),
                    Row("11.build", "11", "of which podman build", "n/a", "s", "lower",
                        targets=POD_TARGETS),
                    Row("11.run", "11", "of which podman run", "n/a", "s", "lower",
                        targets=POD_TARGETS)],
             self.no_layers, NoMount(self.w11_podman)),
        ]
        base += [("12", self.stack_rows(n), self.stack_layers(n), self.w12_stat(n))
                 for n in self.s.stack_depths]
        return base + [("busy", busy_rows(rows), setup, Busy(fn, self.s.load_procs, self.timeout))
                       for wid, rows, setup, fn in base if wid in BUSY_WORKLOADS]

    def stack_rows(self, n):
        return [Row(f"12.{n}.{c}", "12", f"stat of names spread over {n} lower layers", c,
                    "us/stat", "lower") for c in ("cold", "warm")]

    def _discard(self, path):
        """Remove what a run made in the plain control: moved aside, deleted later."""
        if self.trash:
            self.trash.put(path)
        elif os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.unlink(path)

    # --- layers ------------------------------------------------------------
    def main_layers(self):
        m = self.layers.main()
        return [m], m

    def merge_layers(self):
        lowers, plain = self.layers.merge()
        return lowers, plain

    def huge_layers(self):
        h = self.layers.huge()
        return [h], h

    def no_layers(self):
        return [], None

    def stack_layers(self, n):
        return lambda: self.layers.stacked(n)

    # --- workloads -----------------------------------------------------------
    def w1_seqread(self, run):
        size = self.s.big_mib * MIB
        p = os.path.join(run.root, "big.bin")
        run.cold()
        t_cold, n = _timed(read_all, p)
        check(n == size, f"read {n} bytes of {size}")
        t_warm, n = _timed(read_all, p)
        check(n == size, f"read {n} bytes of {size}")
        return {"1.cold": self.s.big_mib / t_cold, "1.warm": self.s.big_mib / t_warm}

    def w2_seqwrite(self, run):
        chunk = bytes((i * 7 + 1) & 0xFF for i in range(1 << 16)) * 16
        p = os.path.join(run.root, "written.bin")

        def write():
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                for _ in range(self.s.big_mib):
                    os.write(fd, chunk)
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            t, _ = _timed(write)
            check(os.stat(p).st_size == self.s.big_mib * MIB, "size of the written file")
        finally:
            if run.plain:
                self._discard(p)
        return {"2": self.s.big_mib / t}

    def w3_metadata(self, run):
        n = self.s.meta_files
        d = os.path.join(run.root, "meta", f"run-{os.getpid()}")
        os.mkdir(d)
        names = [f"file{i:06d}" for i in range(n)]
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            def create():
                for nm in names:
                    os.close(os.open(nm, flags, 0o644, dir_fd=dfd))

            def stat():
                for nm in names:
                    os.stat(nm, dir_fd=dfd, follow_symlinks=False)

            def unlink():
                for nm in names:
                    os.unlink(nm, dir_fd=dfd)
            t_c, _ = _timed(create)
            t_s, _ = _timed(stat)
            t_u, _ = _timed(unlink)
            check(not os.listdir(d), "directory empty after unlink")
        finally:
            os.close(dfd)
            shutil.rmtree(d, ignore_errors=True)
        return {"3.create": n / t_c, "3.stat": n / t_s, "3.unlink": n / t_u}

    def w4_walk(self, run):
        tree = os.path.join(run.root, "tree")
        want = self.s.tree_files + self.s.tree_dirs + 1
        out = {}
        run.cold()
        for cache in ("cold", "warm"):
            t, n = _timed(count_lines, ["find", tree], self.timeout)
            check(n == want, f"find listed {n} entries, expected {want}")
            out[f"4.find.{cache}"] = t
        run.cold()
        for cache in ("cold", "warm"):
            t, _ = _timed(run_cmd, ["du", "-s", tree], self.timeout)
            out[f"4.du.{cache}"] = t
        return out

    def w5_ls(self, run):
        d = os.path.join(run.root, "dir")
        want = 2 * self.s.merge_entries + 2
        n = count_lines(["ls", "-f", d], self.timeout)  # warm-up
        check(n == want, f"ls -f listed {n} entries, expected {want}")
        t, n = _timed(count_lines, ["ls", "-f", d], self.timeout)
        check(n == want, f"ls -f listed {n} entries, expected {want}")
        return {"5": t}

    def w6_append(self, run):
        size = self.s.big_mib * MIB
        big = os.path.join(run.root, "big.bin")
        read_all(os.path.join(self.layers.main(), "big.bin"))  # warm: lower data cached

        def append():
            fd = os.open(big, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                os.write(fd, b"x")
            finally:
                os.close(fd)
        try:
            t_app, _ = _timed(append)
            check(os.stat(big).st_size == size + 1, "size after append")
        finally:
            if run.plain:  # undo in the shared lower the control works in
                os.truncate(big, size)
        return {"6.append": t_app}

    def w6_chmod(self, run):
        """chmod of the big lower file; the data it copied is the growth of the upper's
        allocated blocks (a metadata-only copy allocates at most an xattr block)."""
        cm = os.path.join(run.root, "chmod.bin")
        read_all(os.path.join(self.layers.main(), "chmod.bin"))
        try:
            before = upper_bytes(run)
            t_chmod, _ = _timed(os.chmod, cm, 0o600)
            check(os.stat(cm).st_mode & 0o777 == 0o600, "mode after chmod")
            copied = max(0, upper_bytes(run) - before)
            with open(cm, "rb") as f:  # the data still reads right
                check(len(f.read(MIB)) == min(MIB, self.s.big_mib * MIB), "read after chmod")
        finally:
            if run.plain:
                os.chmod(cm, 0o644)
        return {"6.chmod": t_chmod, "6.chmod.data": copied / MIB}

    def w7_untar(self, run):
        tarball = self.layers.tarball()
        read_all(tarball)
        dst = os.path.join(run.root, f"untar-{os.getpid()}")
        os.mkdir(dst)
        try:
            t, _ = _timed(run_cmd, ["tar", "-xf", tarball, "-C", dst], self.timeout)
            check(len(os.listdir(dst)) == 1, "tar extracted one top directory")
        finally:
            if run.plain:
                self._discard(dst)
        return {"7": t}

    def w8_fio(self, run):
        p = os.path.join(run.root, "big.bin")
        read_all(p)  # warm through the mount
        out = {}
        for jobs in (1, 4):
            argv = ["fio", "--name=randread", f"--filename={p}", "--rw=randread", "--bs=4k",
                    "--ioengine=psync", f"--numjobs={jobs}", "--group_reporting",
                    "--readonly", "--invalidate=0", "--output-format=json",
                    f"--size={self.s.big_mib}m"]
            if self.s.fio_seconds:
                argv += ["--time_based", f"--runtime={self.s.fio_seconds:g}"]
            else:
                argv += [f"--io_size={self.s.fio_io_mib}m"]
            data = json.loads(run_cmd(argv, self.timeout))
            job = data["jobs"][0]
            check(job.get("error", 0) == 0, f"fio error {job.get('error')}")
            iops = job["read"]["iops"]
            check(iops > 0, "fio did some reads")
            out[f"8.j{jobs}"] = iops
        return out

    def w9_cp(self, run):
        src = os.path.join(run.root, "tree")
        dst = os.path.join(run.root, f"tree-copy-{os.getpid()}")
        try:
            run_cmd(["du", "-s", src], self.timeout)  # warm
            t, _ = _timed(run_cmd, ["cp", "-a", src, dst], self.timeout)
            check(len(os.listdir(dst)) == self.s.tree_dirs, "cp -a copied every directory")
        finally:
            if run.plain:
                self._discard(dst)
        return {"9": t}

    def w10_huge(self, run):
        h = os.path.join(run.root, "h")
        want = self.s.huge_files + self.s.huge_dirs + 1
        peak_fds = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                try:
                    peak_fds[0] = max(peak_fds[0], tree_fd_count(run.pid))
                except OSError:
                    return
                stop.wait(0.05)
        th = None
        if run.pid:
            th = threading.Thread(target=sample, daemon=True)
            th.start()
        try:
            run.cold()
            t0 = time.perf_counter()
            n = count_lines(["find", h], self.timeout)
            run_cmd(["du", "-s", h], self.timeout)
            t = time.perf_counter() - t0
        finally:
            stop.set()
            if th:
                th.join()
        check(n == want, f"find listed {n} entries, expected {want}")
        out = {"10.walk": t}
        if run.pid:
            out["10.rss"] = tree_status_kib(run.pid, "VmHWM") / 1024
            out["10.fds"] = max(peak_fds[0], tree_fd_count(run.pid))
        return out

    def w11_podman(self, run):
        return self.pod.run(run.target)

    def w12_stat(self, n):
        files = self.s.stack_files

        def w12(run):
            d = os.path.join(run.root, "d")
            names = [f"f{i:06d}" for i in range(files)]
            out = {}
            run.cold()
            dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                def stat_all():
                    for nm in names:
                        os.stat(nm, dir_fd=dfd, follow_symlinks=False)
                for cache in ("cold", "warm"):
                    t, _ = _timed(stat_all)
                    out[f"12.{n}.{cache}"] = t * 1e6 / files
                check(len(os.listdir(d)) == files, f"listing shows {files} names")
            finally:
                os.close(dfd)
            return out
        w12.__name__ = f"w12_stat_{n}"
        return w12
