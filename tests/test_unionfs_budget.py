# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs's node budget: walking a tree far larger than -o node_budget
keeps the daemon's node count near the budget (the kernel is asked to prune
the least recently used entries nobody uses), while st_ino, open files, a
working directory and a bind mount inside the union are unaffected."""
import os
import subprocess
import time

import pytest

from unionfs_diff import Diff, read, write
from veneer_harness import lazy_umount, require

BUDGET = 1000
NDIRS = 100
PER_DIR = 100  # 10,000 files


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def kernel_prunes():
    """FUSE_NOTIFY_PRUNE (Linux 6.18): without it the budget is not enforced."""
    with open("/proc/kallsyms") as f:
        return any("fuse_try_prune_one_inode" in line for line in f)


def node_stats(mnt):
    """The root's trusted.veneer.nodes: {'nodes': N, 'budget': B, 'offered': P}."""
    raw = os.getxattr(mnt, "trusted.veneer.nodes").decode()
    return {k: int(v) for k, v in (f.split("=") for f in raw.split())}


def settled_nodes(mnt, budget):
    """The node count once the eviction thread has caught up (it runs beside the walk)."""
    for _ in range(300):
        s = node_stats(mnt)
        if s["nodes"] <= budget:
            return s
        time.sleep(0.05)
    return node_stats(mnt)


def build_tree(l0):
    for d in range(NDIRS):
        os.makedirs(f"{l0}/d{d:03d}")
        for i in range(PER_DIR):
            with open(f"{l0}/d{d:03d}/f{i:03d}", "w") as f:
                f.write(f"{d}.{i}")


def inodes(root):
    """path -> st_ino of every entry, as find reports it (lstat of each)."""
    r = subprocess.run(["find", root, "-printf", "%P %i\n"], capture_output=True, text=True,
                       check=True)
    return dict(line.rsplit(" ", 1) for line in r.stdout.splitlines())


def test_walk_stays_within_the_budget_and_st_ino_is_stable(harness):
    """10,000 files under a 1,000-node budget, walked twice; st_ino is the same both times
    and matches the kernel overlay's (the lower's, or the origin's after copy-up)."""
    require(kernel_prunes(), "the kernel has no FUSE_NOTIFY_PRUNE (Linux 6.18)")
    d = Diff(harness, 1, build_tree, vopts=(f"node_budget={BUDGET}",))
    v = d.v.p()
    # A copied-up file keeps its origin's st_ino, across eviction too.
    for s in d.sides:
        with open(s.p("d007", "f011"), "a") as f:
            f.write("+")
    first = {s.name: inodes(s.p()) for s in d.sides}
    assert len(first["v"]) == NDIRS * (PER_DIR + 1) + 1
    s1 = settled_nodes(v, BUDGET)
    assert s1["budget"] == BUDGET
    assert s1["nodes"] <= BUDGET, f"{s1} after the first walk"
    # (The kernel may forget some entries by itself too: lower bounds are loose.)
    assert s1["offered"] >= NDIRS * PER_DIR // 2, s1
    second = inodes(v)
    s2 = settled_nodes(v, BUDGET)
    assert s2["nodes"] <= BUDGET, f"{s2} after the second walk"
    # Most entries were forgotten and looked up afresh: their st_ino did not move.
    assert s2["offered"] >= s1["offered"] + NDIRS * PER_DIR // 2, (s1, s2)
    assert second == first["v"]
    # Kernel overlay is the oracle: relative to each side's own lower, the same numbers.
    for s in d.sides:
        lower = inodes(s.lowers[0])
        files = {p: i for p, i in first[s.name].items() if p.startswith("d") and "/" in p}
        assert files == {p: lower[p] for p in files}, f"{s.name}: st_ino is not the lower's"
    assert read(d.v.p("d007", "f011")) == b"7.11+"
    d.check()


def test_in_use_entries_survive_a_walk_over_the_budget(harness):
    """Open files, a process's cwd and a bind mount on a file inside the union stay valid:
    only entries nobody uses are dropped."""
    require(kernel_prunes(), "the kernel has no FUSE_NOTIFY_PRUNE (Linux 6.18)")
    d = Diff(harness, 1, build_tree, vopts=(f"node_budget={BUDGET}",))
    v = d.v.p()
    held = []
    for k in range(0, NDIRS, 10):
        p = d.v.p(f"d{k:03d}", "f005")
        fd = os.open(p, os.O_RDWR)
        held.append((p, fd, os.fstat(fd).st_ino))
    cwd_dir = d.v.p("d055")
    sleeper = subprocess.Popen(["sleep", "600"], cwd=cwd_dir)
    harness.defer(sleeper.kill)
    target = d.v.p("d066", "f000")
    subprocess.run(["mount", "--bind", "/etc/hostname", target], check=True)
    harness.defer(lazy_umount, target)
    try:
        for _ in range(2):
            inodes(v)
        s = settled_nodes(v, BUDGET)
        assert s["offered"] >= NDIRS * PER_DIR, s
        for p, fd, ino in held:
            assert os.readlink(f"/proc/self/fd/{fd}") == p  # not unhashed: no " (deleted)"
            os.pwrite(fd, b"X", 0)
            assert os.stat(p).st_ino == ino == os.fstat(fd).st_ino
            assert read(p)[:1] == b"X"
        assert os.readlink(f"/proc/{sleeper.pid}/cwd") == cwd_dir
        with open("/proc/self/mountinfo") as f:
            assert any(line.split()[4] == target for line in f), "the bind mount was detached"
        with open("/etc/hostname", "rb") as f:
            assert read(target) == f.read()
    finally:
        for _, fd, _ in held:
            os.close(fd)
        sleeper.kill()
        sleeper.wait()
        lazy_umount(target)


def test_budget_option_is_validated(harness, unionfs_bin):
    """A bad node_budget is one clear error naming it; nothing is mounted."""
    lower = harness.mkdir("l")
    write(os.path.join(lower, "f"), "x")
    mnt = harness.mkdir("m")
    for bad in ("12", "abc", "-5", "2000000000"):
        r = subprocess.run([unionfs_bin, "-f", "-o", f"lowerdir={lower},node_budget={bad}", mnt],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (bad, r)
        assert f"node_budget='{bad}'" in r.stderr, r.stderr
        assert not os.path.ismount(mnt)
    r = subprocess.run([unionfs_bin, "--help"], capture_output=True, text=True, check=True)
    assert "node_budget=N" in r.stdout
