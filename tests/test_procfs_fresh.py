# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-procfs keeps fds of cgroup files, the container of each pid namespace
and recent host files between reads: none of that may show a container stale
values. A changed limit, a move to another cgroup, and a cgroup removed and
made again under the same name all show on the very next read."""
import os
import subprocess
import time

import pytest

from procfs_util import MiB, Container, limited_cgroups, meminfo_kb, mount_procfs
from veneer_harness import remove_cgroup, require


@pytest.fixture
def procfs_env(harness, need_fuse, procfs_bin):
    require(os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/cpuset"),
            "needs cgroup v1 memory and cpuset hierarchies")
    return harness


def _total_kb(c):
    return meminfo_kb(c.run("cat /proc/meminfo"), "MemTotal")


def _move(c, ctrl, path):
    """Move the container (unshare's process and the init; later commands) to path in ctrl."""
    for pid in (c.proc.pid, c.init):
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
    c.cgroups = dict(c.cgroups, **{ctrl: path})


def test_limit_change_move_and_recreated_cgroup_show_at_once(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    cg = limited_cgroups(h, mem=256 * MiB)
    c = Container(h, m.path, cg)
    for _ in range(3):
        assert _total_kb(c) == 256 * 1024

    # The limit file is kept open: a new value must still show on the next read.
    with open(os.path.join(cg["memory"], "memory.limit_in_bytes"), "w") as f:
        f.write(str(128 * MiB))
    assert _total_kb(c) == 128 * 1024

    # Moved to another cgroup: that one's limit, at once.
    _, other = h.cgroup_v1(["memory"], settings={("memory", "memory.limit_in_bytes"): 64 * MiB})
    _move(c, "memory", other["memory"])
    assert _total_kb(c) == 64 * 1024

    # The first cgroup removed and made again under the same name with another limit;
    # moved back: the kept fds of the removed one must not answer.
    old = cg["memory"]
    deadline = time.time() + 10
    while True:
        try:
            os.rmdir(old)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)  # the commands that ran there may still be leaving
    os.mkdir(old)
    with open(os.path.join(old, "memory.limit_in_bytes"), "w") as f:
        f.write(str(32 * MiB))
    _move(c, "memory", old)
    assert _total_kb(c) == 32 * 1024


def test_new_container_after_the_previous_died(procfs_env):
    """A container gone and a new one started: the new one's own values, never the cached ones
    of the old namespace or its init."""
    h = procfs_env
    m = mount_procfs(h)
    for mib in (96, 48, 160):
        c = Container(h, m.path, limited_cgroups(h, mem=mib * MiB))
        assert _total_kb(c) == mib * 1024
        c.stop()


def _fds_under(pid, dirs):
    """The daemon's open fds whose target lies in one of dirs (kernfs links of removed
    files may carry a " (deleted)" suffix: a prefix match covers both)."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        if any(target == d or target.startswith(d + "/") for d in dirs):
            n += 1
    return n


def test_fds_of_removed_cgroups_are_closed_without_a_read(procfs_env):
    """The daemon keeps fds of cgroup files between reads; each pins its cgroup (a removed
    memcg stays in memory while a file of it is open). Once the containers are gone and
    their cgroups removed, those fds must close on their own: nobody reads them again."""
    h = procfs_env
    m = mount_procfs(h)
    worker = m.daemon.proc.pid
    dirs = []
    for mib in (96, 112):
        cg = limited_cgroups(h, mem=mib * MiB, quota=0.5)
        c = Container(h, m.path, cg)
        for f in ("meminfo", "cpuinfo", "stat"):
            c.run(f"cat /proc/{f}")
        assert _total_kb(c) == mib * 1024
        c.stop()
        dirs.extend(cg.values())
    assert _fds_under(worker, dirs) > 0, "the daemon kept no cgroup fds: nothing to test"
    for d in dirs:
        remove_cgroup(d)
        assert not os.path.exists(d)
    deadline = time.time() + 60  # generous: the sweep runs every few seconds
    while _fds_under(worker, dirs) > 0:
        assert time.time() < deadline, \
            f"fds of removed cgroups still open: {_fds_under(worker, dirs)}"
        time.sleep(0.2)
    # Still serving, and cgroup fds are kept again for a live container.
    cg = limited_cgroups(h, mem=80 * MiB)
    c = Container(h, m.path, cg)
    assert _total_kb(c) == 80 * 1024
    assert _fds_under(worker, list(cg.values())) > 0


def test_one_process_reading_again_sees_changes_at_once(procfs_env):
    """The daemon remembers the pid namespace of a task that reads more than once (a pidfd
    tells it the task still lives): a long-lived reader (top, a monitoring agent) must
    still see a changed limit and a move of its container on its very next open."""
    h = procfs_env
    m = mount_procfs(h)
    cg = limited_cgroups(h, mem=200 * MiB)
    c = Container(h, m.path, cg)
    # Reads from a thread that is not the process's leader: FUSE names the calling thread.
    reader = ("import sys, threading\n"
              "def run():\n"
              "    for _ in sys.stdin:\n"
              "        t = open('/proc/meminfo').read()\n"
              "        print(next(l.split()[1] for l in t.splitlines()"
              " if l.startswith('MemTotal:')), flush=True)\n"
              "th = threading.Thread(target=run)\n"
              "th.start()\n"
              "th.join()\n")
    p = c.popen("/usr/bin/python3", "-c", reader, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True)

    def total_kb():
        p.stdin.write("\n")
        p.stdin.flush()
        return int(p.stdout.readline())

    for _ in range(5):  # the second read onwards comes from the remembered namespace
        assert total_kb() == 200 * 1024
    worker = m.daemon.proc.pid
    links = []
    for fd in os.listdir(f"/proc/{worker}/fd"):
        try:
            links.append(os.readlink(f"/proc/{worker}/fd/{fd}"))
        except FileNotFoundError:
            pass
    assert "anon_inode:[pidfd]" in links, "the reader's pid was not remembered"
    with open(os.path.join(cg["memory"], "memory.limit_in_bytes"), "w") as f:
        f.write(str(150 * MiB))
    assert total_kb() == 150 * 1024
    _, other = h.cgroup_v1(["memory"], settings={("memory", "memory.limit_in_bytes"): 72 * MiB})
    _move(c, "memory", other["memory"])
    assert total_kb() == 72 * 1024
    # A new container, with a reader of its own: its own values, never the first one's.
    c2 = Container(h, m.path, limited_cgroups(h, mem=40 * MiB))
    assert _total_kb(c2) == 40 * 1024
    assert total_kb() == 72 * 1024
