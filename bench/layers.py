# SPDX-License-Identifier: GPL-2.0-or-later
"""The sizes of a run and the read-only lower layers the union workloads use.

Lower layers are generated once per workspace and size (a stamp file records
the sizes they were made with) and are never written by a benchmark: every
union run gets a fresh upper and work directory, and the plain-directory
control undoes what a workload changed in it.
"""
import json
import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass
class Sizes:
    big_mib: int = 1024            # workloads 1, 2, 6, 8
    tree_dirs: int = 200           # workloads 4, 9
    tree_files_per_dir: int = 100
    meta_files: int = 20000        # workload 3
    merge_entries: int = 10000     # workload 5, per layer
    huge_dirs: int = 100           # workload 10 (--huge: 1000 x 1000)
    huge_files_per_dir: int = 1000
    tar_source: str = "/usr/include"  # workload 7; "" = tar of the generated tree
    fio_seconds: float = 5.0       # workload 8, time based; 0 = fio_io_mib instead
    fio_io_mib: int = 0
    proc_containers: tuple = (1, 10, 100)
    proc_seconds: float = 2.0
    pod_files: int = 5000          # workload 11: small files one RUN step creates
    pod_parts: int = 12            # workload 11: C files the last RUN step compiles
    pod_compiler: bool = True      # workload 11: the image has gcc (else a shell "build")
    pod_steps: int = 4             # workload 11: RUN steps (1: the same work in one step)
    stack_depths: tuple = (2, 50, 500)  # workload 12: lower layers stacked
    stack_files: int = 5000        # workload 12: names spread over those layers
    busy_load: int = 0             # busy host: CPU-bound processes (0: one per CPU)
    reps: int = 3

    @property
    def tree_files(self):
        return self.tree_dirs * self.tree_files_per_dir

    @property
    def load_procs(self):
        return self.busy_load or os.cpu_count() or 1

    @property
    def huge_files(self):
        return self.huge_dirs * self.huge_files_per_dir

    def describe(self):
        tar = self.tar_source or "the generated tree"
        fio = (f"{self.fio_seconds:g} s per job" if self.fio_seconds
               else f"{self.fio_io_mib} MiB per job")
        return [
            f"big lower file: {self.big_mib} MiB (workloads 1, 2, 6, 8; a second one for chmod)",
            f"lower tree: {self.tree_files} files in {self.tree_dirs} dirs (workloads 4, 9)",
            f"metadata: {self.meta_files} files created, stated, unlinked (workload 3)",
            f"merged directory: 2 layers x {self.merge_entries} entries (workload 5)",
            f"untar: a tarball of {tar} (workload 7)",
            f"fio: 4k random reads, {fio} (workload 8)",
            f"big tree: {self.huge_files} files in {self.huge_dirs} dirs (workload 10)",
            f"podman build, {self.pod_steps} RUN step(s): the untar tarball unpacked, "
            f"{self.pod_files} small files created "
            f"(half deleted, a third of the rest renamed), chmod/chown -R, then "
            + (f"{self.pod_parts} C files compiled with gcc" if self.pod_compiler
               else "a shell script 'built'") + "; then podman run of the image (workload 11)",
            f"lower layers stacked {'/'.join(map(str, self.stack_depths))} deep, "
            f"{self.stack_files} names spread over them, each stated once (workload 12)",
            f"busy host: workloads 3, 7, 9 while `stress-ng --cpu {self.load_procs}` runs",
            f"/proc: {', '.join(map(str, self.proc_containers))} containers, "
            f"{self.proc_seconds:g} s per file",
            f"repetitions: {self.reps} (interleaved)",
        ]


def quick_sizes():
    return Sizes(big_mib=8, tree_dirs=10, tree_files_per_dir=20, meta_files=300,
                 merge_entries=200, huge_dirs=10, huge_files_per_dir=100, tar_source="",
                 fio_seconds=0, fio_io_mib=2, proc_containers=(1, 2, 4), proc_seconds=0.2,
                 pod_files=60, pod_parts=3, pod_compiler=False, pod_steps=1, stack_depths=(2, 5, 10),
                 stack_files=100, reps=3)


def _write_big(path, mib):
    chunk = bytes((i * 131 + 7) & 0xFF for i in range(1 << 16)) * 16  # 1 MiB, not zeros
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        for _ in range(mib):
            os.write(fd, chunk)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_tree(root, dirs, per_dir):
    blob = bytes(range(256)) * 16
    for d in range(dirs):
        dp = os.path.join(root, f"d{d:04d}")
        os.makedirs(dp)
        for i in range(per_dir):
            n = (d * per_dir + i) * 37 % 2048
            fd = os.open(os.path.join(dp, f"f{i:05d}.txt"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, blob[:n])
            finally:
                os.close(fd)


def _empty_names(d, names):
    """Directory d (made with its parents) holding an empty file of each name."""
    os.makedirs(d)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for nm in names:
            os.mknod(nm, 0o644 | 0o100000, dir_fd=dfd)
    finally:
        os.close(dfd)


def _empty_files(root, dirs, per_dir):
    """Many empty files, one mknod each (cheaper than open+close)."""
    for d in range(dirs):
        _empty_names(os.path.join(root, f"d{d:04d}"), (f"f{i:05d}" for i in range(per_dir)))


class Layers:
    """Paths of the generated lowers; generate() makes what is missing or stale."""

    def __init__(self, workspace, sizes, log):
        self.root = os.path.join(workspace, "layers")
        self.sizes = sizes
        self.log = log
        os.makedirs(self.root, exist_ok=True)

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    def fresh(self, name, spec, make):
        """path of name, made by make(path) unless it exists and was made from spec."""
        stamp = self.path(name + ".stamp")
        target = self.path(name)
        want = json.dumps(spec, sort_keys=True)
        try:
            with open(stamp) as f:
                if f.read() == want and os.path.exists(target):
                    return target
        except FileNotFoundError:
            pass
        self.log(f"generating layer {name} ...")
        if os.path.lexists(stamp):
            os.unlink(stamp)
        if os.path.isdir(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
        make(target)
        with open(stamp, "w") as f:
            f.write(want)
        return target

    # One lower for workloads 1-4, 6, 8, 9: big.bin, chmod.bin, tree/, meta/.
    def main(self):
        s = self.sizes

        def make(t):
            os.makedirs(os.path.join(t, "tree"))
            os.makedirs(os.path.join(t, "meta"))
            _write_big(os.path.join(t, "big.bin"), s.big_mib)
            _write_big(os.path.join(t, "chmod.bin"), s.big_mib)
            _write_tree(os.path.join(t, "tree"), s.tree_dirs, s.tree_files_per_dir)
        return self.fresh("main", {"big": s.big_mib, "tree": [s.tree_dirs, s.tree_files_per_dir],
                                    "v": 1}, make)

    # Workload 5: dir/ in two lowers with distinct names, and the merged view for the control.
    def merge(self):
        n = self.sizes.merge_entries

        def make_one(prefix):
            def make(t):
                _empty_names(os.path.join(t, "dir"),
                             (f"{p}{i:06d}" for i in range(n) for p in prefix))
            return make
        a = self.fresh("merge-a", {"n": n}, make_one("a"))
        b = self.fresh("merge-b", {"n": n}, make_one("b"))
        plain = self.fresh("merge-plain", {"n": n}, make_one("ab"))
        return [a, b], plain

    def huge(self):
        s = self.sizes

        def make(t):
            os.makedirs(os.path.join(t, "h"))
            _empty_files(os.path.join(t, "h"), s.huge_dirs, s.huge_files_per_dir)
        return self.fresh("huge", {"dirs": s.huge_dirs, "per": s.huge_files_per_dir}, make)

    # Workload 12: n lowers 0..n-1 (0 on top), each with d/ holding the names i with
    # i % n == layer, and the merged view as one plain directory.
    def stacked(self, n):
        files = self.sizes.stack_files

        def make(t):
            for k in range(n):
                _empty_names(os.path.join(t, str(k), "d"),
                             (f"f{i:06d}" for i in range(k, files, n)))
            _empty_names(os.path.join(t, "plain", "d"), (f"f{i:06d}" for i in range(files)))
        root = self.fresh(f"stack-{n}", {"n": n, "files": files}, make)
        return [os.path.join(root, str(k)) for k in range(n)], os.path.join(root, "plain")

    def tarball(self):
        src = self.sizes.tar_source
        tree = None if src else self.main()

        def make(t):
            if src:
                parent, base = os.path.split(os.path.abspath(src))
            else:
                parent, base = tree, "tree"
            subprocess.run(["tar", "-C", parent, "-cf", t, base], check=True, timeout=600)
        return self.fresh("untar.tar", {"src": src, "tree": self.sizes.tree_files}, make)
