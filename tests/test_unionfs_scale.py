# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs at scale: more files than the open-file limit, hundreds of
layers, deep paths; compared with kernel overlayfs where the kernel can go."""
import os
import resource
import subprocess

import pytest

from unionfs_diff import Diff, read, write


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def daemon_fds(mount):
    return len(os.listdir(f"/proc/{mount.daemon.proc.pid}/fd"))


def test_tree_larger_than_the_fd_limit(harness):
    """25,000 files (over the 20,000 open-file limit) walked by find, stat'ed and read."""
    nfiles = 25000
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def build(l0, l1):
        for i in range(nfiles):
            d = f"{l1 if i % 2 else l0}/d{i % 50:02d}/e{i % 7}"
            if i < 350:
                os.makedirs(d, exist_ok=True)
            with open(f"{d}/f{i}", "w") as f:
                f.write(str(i))

    d = Diff(harness, 2, build)
    outs = {}
    for s in d.sides:
        r = subprocess.run(["find", s.p(), "-type", "f", "-printf", "%P %s %n\n"],
                           capture_output=True, text=True, check=True)
        outs[s.name] = sorted(r.stdout.splitlines())
    assert len(outs["v"]) == nfiles
    assert outs["k"] == outs["v"]
    # Every file once more, open and read: nodes and fds must stay bounded.
    total = 0
    for dirpath, _, files in os.walk(d.v.p()):
        for f in files:
            total += len(read(os.path.join(dirpath, f)))
    assert total == sum(len(str(i)) for i in range(nfiles))
    fds = daemon_fds(d.v.mount)
    assert fds < min(limit, 8192), f"daemon holds {fds} fds"
    # Writes across the tree (copy-up of parents) still work after eviction.
    for i in range(0, nfiles, 997):
        p = d.v.p(f"d{i % 50:02d}", f"e{i % 7}", f"f{i}")
        with open(p, "a") as f:
            f.write("+")
        assert read(p) == f"{i}+".encode()


def test_small_fd_cache_still_correct(harness):
    """With a tiny fd cache every node is reopened from its parent and name over and over."""
    def build(l0, l1, l2):
        for i in range(60):
            os.makedirs(f"{l2}/a{i}/b/c")
            write(f"{l2}/a{i}/b/c/f", str(i))
            os.makedirs(f"{l1}/a{i}/b")
            write(f"{l1}/a{i}/b/g", str(i))

    d = Diff(harness, 3, build, vopts=("fd_cache=64",))
    for _ in range(2):
        for i in range(60):
            assert read(d.v.p(f"a{i}", "b", "c", "f")) == str(i).encode()
    for s in d.sides:
        for i in range(0, 60, 3):
            os.rename(s.p(f"a{i}", "b", "g"), s.p(f"a{i}", "b", "c", "moved"))
            os.unlink(s.p(f"a{i}", "b", "c", "f"))
    d.check()


def test_deep_path_max_tree_survives_eviction(harness):
    """A chain of directories ~PATH_MAX deep is reached through reopen-from-parent."""
    def build(l0, l1):
        p = l1
        for i in range(19):
            p = os.path.join(p, f"{i:02d}" + "x" * 198)
            os.mkdir(p)
        write(os.path.join(p, "leaf"), "deep")

    d = Diff(harness, 2, build, vopts=("fd_cache=64",))
    for s in d.sides:
        cur = os.open(s.p(), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for i in range(19):
                nxt = os.open(f"{i:02d}" + "x" * 198, os.O_RDONLY | os.O_DIRECTORY, dir_fd=cur)
                os.close(cur)
                cur = nxt
            fd = os.open("leaf", os.O_RDWR | os.O_APPEND, dir_fd=cur)
            os.write(fd, b"er")
            os.close(fd)
        finally:
            os.close(cur)
    d.check()
