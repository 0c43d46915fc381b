# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-procfs end to end: real cgroup v1 children, real pid+mount namespaces,
real tools (free, top, getconf, nproc, python) reading the served files through
bind mounts over /proc, like a container runtime sets them up."""
import errno
import os
import re
import signal
import subprocess
import time

import pytest

from procfs_util import (MiB, Container, free_b, limited_cgroups, meminfo_kb, mount_procfs,
                         procfs_bin, start_procfs)
from veneer_harness import errno_of, mounted_at, pids_mentioning, require

PY = "/usr/bin/python3"


@pytest.fixture
def procfs_env(harness, need_fuse, procfs_bin):
    require(os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/cpuset"),
            "needs cgroup v1 memory and cpuset hierarchies")
    return harness


def test_help_and_bad_options(procfs_env, tmp_path):
    r = subprocess.run([procfs_bin(), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ("cgroup_root=", "cpu_quota=", "threads=", "respawn_delay=", "--ready-fd"):
        assert opt in r.stdout
    mnt = tmp_path / "m"
    mnt.mkdir()
    for bad, word in ((["-o", "cpu_quota=7"], "cpu_quota"),
                      (["-o", "cgroup_root=/nonexistent"], "/nonexistent"),
                      (["-o", "cgroup_root=/tmp"], "/tmp"),
                      (["-o", "threads=0"], "threads"),
                      (["-o", "bogus_option"], "")):
        r = subprocess.run([procfs_bin(), "-f", *bad, str(mnt)], capture_output=True,
                           text=True, timeout=20)
        assert r.returncode == 2, (bad, r.stderr)
        assert word in r.stderr
        assert not mounted_at(str(mnt))
    r = subprocess.run([procfs_bin(), "-f", str(tmp_path / "missing")], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode != 0 and "missing" in r.stderr


def test_limited_container_tools(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    cg = limited_cgroups(h, mem=256 * MiB, quota=0.5, cpus="1")
    c = Container(h, m.path, cg, charge_tmpfs=True)

    before = free_b(c.run("free -b"))
    assert before["total"] == 268435456
    top = c.run("top -b -n1 -w 512")
    assert re.search(r"MiB Mem :\s+256\.0 total", top), top
    top1 = c.run("top -b -n1 -w 512 -1")
    assert len(re.findall(r"^%Cpu\d+\s*:", top1, re.M)) == 1, top1
    assert c.run("grep -c ^processor /proc/cpuinfo").strip() == "1"
    cpuinfo = c.run("cat /proc/cpuinfo")
    assert re.search(r"^processor\s*: 0$", cpuinfo, re.M)
    stat = c.run("cat /proc/stat")
    assert len(re.findall(r"^cpu\d+ ", stat, re.M)) == 1
    cpu_line = [int(x) for x in re.search(r"^cpu  (.*)$", stat, re.M).group(1).split()]
    cpu0_line = [int(x) for x in re.search(r"^cpu0 (.*)$", stat, re.M).group(1).split()]
    assert cpu_line == cpu0_line
    for line in ("intr ", "ctxt ", "btime ", "processes "):
        assert re.search("^" + line, stat, re.M)
    assert c.run("getconf _NPROCESSORS_ONLN").strip() == "1"
    assert c.run("nproc --all").strip() == "1"
    assert c.run(f"{PY} -c 'import os; print(os.cpu_count())'").strip() == "1"
    for f in ("online", "possible", "present"):
        assert c.run(f"cat /sys/devices/system/cpu/{f}") == "0\n"
    up, idle = (float(x) for x in c.run("cat /proc/uptime").split())
    assert 0 <= up < 5 and 0 <= idle <= up * 1 + 0.01
    load = c.run("cat /proc/loadavg").split()
    assert [float(x) for x in load[:3]] == pytest.approx([0, 0, 0], abs=0.3)
    running, total = (int(x) for x in load[3].split("/"))
    assert 1 <= total < 20
    assert 0 < int(load[4]) < 100, "the last field must be a pid inside the container"
    swaps = c.run("cat /proc/swaps").splitlines()
    assert swaps[0].startswith("Filename")

    # Charge 100 MiB to the cgroup (tmpfs pages stay charged to the writer's cgroup).
    c.run("dd if=/dev/zero of=/mnt/charge bs=1M count=100 status=none")
    after = free_b(c.run("free -b"))
    assert after["total"] == 268435456
    grown = after["used"] - before["used"]
    assert 95 * MiB <= grown <= 115 * MiB, (before, after)
    mi = c.run("cat /proc/meminfo")
    assert meminfo_kb(mi, "Shmem") >= 100 * 1024
    assert meminfo_kb(mi, "MemAvailable") <= meminfo_kb(mi, "MemTotal")


def test_quota_only_follows_quota(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    ncpu = os.cpu_count()
    require(ncpu >= 2, "needs two CPUs to tell a quota from the host")
    cg = limited_cgroups(h, mem=None, quota=0.5, cpus=None)
    c = Container(h, m.path, cg)
    assert c.run("grep -c ^processor /proc/cpuinfo").strip() == "1"
    assert len(re.findall(r"^cpu\d+ ", c.run("cat /proc/stat"), re.M)) == 1
    assert c.run("cat /sys/devices/system/cpu/online") == "0\n"
    # No memory limit: meminfo is the host's.
    assert meminfo_kb(c.run("cat /proc/meminfo"), "MemTotal") == \
        meminfo_kb(open("/proc/meminfo").read(), "MemTotal")


def test_quota_rule_can_be_turned_off(procfs_env):
    h = procfs_env
    require(os.cpu_count() >= 2, "needs two CPUs")
    m = mount_procfs(h, opts=["-o", "cpu_quota=0"])
    cg = limited_cgroups(h, quota=0.5)
    c = Container(h, m.path, cg)
    assert c.run("grep -c ^processor /proc/cpuinfo").strip() == str(os.cpu_count())
    with open("/sys/devices/system/cpu/online") as f:
        assert c.run("cat /sys/devices/system/cpu/online") == f.read()


def test_small_reads_repeated_reads_and_rewind(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    cg = limited_cgroups(h, mem=300 * MiB, cpus="0")
    c = Container(h, m.path, cg)
    for f in ("meminfo", "cpuinfo", "stat", "swaps"):
        whole = c.run(f"cat /proc/{f}")
        by7 = c.run(f"dd if=/proc/{f} bs=7 status=none")
        by1 = c.run(f"dd if=/proc/{f} bs=1 status=none")
        if f in ("meminfo", "stat"):  # counters move between opens: compare keys
            keys = lambda t: [line.split()[0] for line in t.splitlines()]
            assert keys(by7) == keys(whole) == keys(by1)
        else:
            assert by7 == whole == by1
    for _ in range(20):
        assert meminfo_kb(c.run("cat /proc/meminfo"), "MemTotal") == 300 * 1024
    # One open, reads at offsets, then a rewind renders a fresh snapshot.
    out = c.run(f"{PY} -c \"import os\n"
                "fd = os.open('/proc/meminfo', os.O_RDONLY)\n"
                "a = os.pread(fd, 5, 0) + os.pread(fd, 100000, 5)\n"
                "b = os.pread(fd, 100000, 0)\n"
                "print(a.split()[1].decode(), b.split()[1].decode())\"")
    assert out.split() == [str(300 * 1024)] * 2


def test_concurrent_readers_in_different_containers(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    cs = []
    for i in range(8):
        cg = limited_cgroups(h, mem=(128 + 16 * i) * MiB)
        cs.append((128 + 16 * i, Container(h, m.path, cg)))
    procs = []
    for mib, c in cs:
        loop = "for i in $(seq 30); do grep ^MemTotal /proc/meminfo; done"
        procs.append((mib, c.popen("sh", "-c", loop, stdout=subprocess.PIPE, text=True)))
    for mib, p in procs:
        out, _ = p.communicate(timeout=60)
        vals = {int(line.split()[1]) for line in out.splitlines()}
        assert p.returncode == 0 and vals == {mib * 1024}, (mib, vals)


def _read_meminfo_total(c, timeout=20):
    return meminfo_kb(c.run("cat /proc/meminfo", timeout=timeout), "MemTotal")


def test_restart_after_sigkill_keeps_bind_mounts_working(procfs_env):
    h = procfs_env
    mnt = h.path("procfs")
    # respawn_delay=0: only the explicit start below may bring a worker back.
    m = mount_procfs(h, mnt, opts=["-o", "respawn_delay=0"])
    cg = limited_cgroups(h, mem=200 * MiB, cpus="0")
    c = Container(h, mnt, cg)
    assert _read_meminfo_total(c) == 200 * 1024
    m.daemon.stop(signal.SIGKILL)  # the daemon's whole process group
    assert m.daemon.proc.returncode == -signal.SIGKILL
    assert mounted_at(mnt), "the mount must outlive the worker"
    d2 = start_procfs(h, mnt, opts=["-o", "respawn_delay=0"])
    m.daemon = d2
    assert _read_meminfo_total(c) == 200 * 1024
    assert c.run("grep -c ^processor /proc/cpuinfo").strip() == "1"
    # And again, with a reader waiting while no worker runs: it is answered after the start.
    d2.stop(signal.SIGKILL)
    waiting = c.popen("grep", "^MemTotal", "/proc/meminfo", stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert waiting.poll() is None, "without a worker the read waits"
    m.daemon = start_procfs(h, mnt, opts=["-o", "respawn_delay=0"])
    out, _ = waiting.communicate(timeout=20)
    assert waiting.returncode == 0 and int(out.split()[1]) == 200 * 1024


def test_crash_respawn_and_upgrade_handover(procfs_env):
    h = procfs_env
    mnt = h.path("procfs")
    m = mount_procfs(h, mnt, opts=["-o", "respawn_delay=300"])
    cg = limited_cgroups(h, mem=220 * MiB)
    c = Container(h, mnt, cg)
    assert _read_meminfo_total(c) == 220 * 1024
    # Crash with nobody restarting it: the holder starts a worker by itself.
    m.daemon.stop(signal.SIGKILL)
    assert _read_meminfo_total(c) == 220 * 1024
    # Upgrade: a new instance attaches, the running worker retires (exits 0).
    d2 = start_procfs(h, mnt, opts=["-o", "respawn_delay=300"])
    m.daemon = d2
    d3 = start_procfs(h, mnt, opts=["-o", "respawn_delay=300"])
    assert d2.wait(15) == 0, d2.output()
    m.daemon = d3
    assert _read_meminfo_total(c) == 220 * 1024
    assert d3.alive()


def _keys(text, sep=None):
    return [line.split(sep)[0].strip() for line in text.splitlines() if line.strip()]


def test_host_fallback_root_cgroup(procfs_env):
    h = procfs_env
    m = mount_procfs(h)
    # A process in the root cgroup of every hierarchy, in our pid namespace.
    join = "".join(f"echo $$ > /sys/fs/cgroup/{c}/cgroup.procs; " for c in
                   ("memory", "cpu", "cpuacct", "cpuset", "blkio", "pids"))

    def read(path):
        r = subprocess.run(["sh", "-c", join + f"cat {path}"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return r.stdout

    p = m.path
    for f in ("cpuinfo", "swaps"):
        served, host = read(f"{p}/proc/{f}"), read(f"/proc/{f}")
        strip = lambda t: re.sub(r"cpu MHz.*", "", t)
        assert strip(served) == strip(host)
    for f in ("online", "possible", "present"):
        assert read(f"{p}/sys/devices/system/cpu/{f}") == read(f"/sys/devices/system/cpu/{f}")
    served, host = read(f"{p}/proc/meminfo"), read("/proc/meminfo")
    assert _keys(served, ":") == _keys(host, ":")
    for k in ("MemTotal", "SwapTotal", "CommitLimit", "Hugepagesize"):
        assert meminfo_kb(served, k) == meminfo_kb(host, k)
    served, host = read(f"{p}/proc/stat"), read("/proc/stat")
    assert _keys(served) == _keys(host)
    assert re.search(r"^btime .*", served, re.M).group(0) == \
        re.search(r"^btime .*", host, re.M).group(0)
    served, host = read(f"{p}/proc/uptime"), read("/proc/uptime")
    assert float(served.split()[0]) == pytest.approx(float(host.split()[0]), abs=2)
    served, host = read(f"{p}/proc/diskstats"), read("/proc/diskstats")
    assert [line.split()[:3] for line in served.splitlines()] == \
        [line.split()[:3] for line in host.splitlines()]
    assert len(read(f"{p}/proc/loadavg").split()) == 5


def _journal_fd(pid):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if "veneer-procfs-journal" in os.readlink(f"/proc/{pid}/fd/{fd}"):
                return fd
        except FileNotFoundError:
            pass
    raise AssertionError("the worker has no journal memfd")


def _all_stopped(pid):
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t"):
                return False
    return True


def test_request_in_flight_when_worker_dies_is_answered(procfs_env):
    """Freeze the worker until it is caught holding a request it has read but not
    answered (its journal slot is set), SIGKILL it there, start a new worker: the
    blocked reader gets its answer (replayed), not a hang or an error."""
    import struct
    h = procfs_env
    mnt = h.path("procfs")
    opts = ["-o", "respawn_delay=0,threads=1"]
    m = mount_procfs(h, mnt, opts=opts)
    cg = limited_cgroups(h, mem=240 * MiB)
    c = Container(h, mnt, cg)
    log = h.path("reader.log")
    reader = c.popen(PY, "-c",
                     "import sys\n"
                     f"out = open({log!r}, 'a', buffering=1)\n"
                     "while True:\n"
                     "    with open('/proc/meminfo') as f:\n"
                     "        out.write(f.readline())\n",
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while not os.path.exists(log) or os.path.getsize(log) == 0:
        assert reader.poll() is None
        time.sleep(0.01)
    w = m.daemon.proc.pid
    jfd = _journal_fd(w)
    caught = False
    for attempt in range(1000):
        os.kill(w, signal.SIGSTOP)
        while not _all_stopped(w):
            time.sleep(0.0005)
        with open(f"/proc/{w}/fd/{jfd}", "rb") as f:
            head = f.read(24)
        if struct.unpack_from("I", head, 16)[0] != 0:
            caught = True
            break
        os.kill(w, signal.SIGCONT)
        time.sleep(0.001 * (attempt % 3))
    assert caught, "never caught the worker inside a request"
    m.daemon.stop(signal.SIGKILL)
    before = os.path.getsize(log)
    time.sleep(0.3)
    assert os.path.getsize(log) == before, "no worker: the reader must be waiting"
    m.daemon = start_procfs(h, mnt, opts=opts)
    deadline = time.time() + 20
    while os.path.getsize(log) <= before + 100 and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(log) > before + 100, "the reader did not resume"
    assert reader.poll() is None, reader.stderr.read()
    assert "replayed 1 request" in m.daemon.output()
    with open(log) as f:
        values = {line.split()[1] for line in f if line.strip()}
    assert values == {str(240 * 1024)}


def _procs_mentioning(text):
    return {pid: cmd for pid, cmd in pids_mentioning(text, skip_zombies=False)
            if "veneer-procfs" in cmd}


def test_holder_killed_is_replaced_by_the_worker(procfs_env):
    """Killing the holder does not lose the connection: the worker starts a new
    holder from its copy of the fd, and a later worker restart attaches to it."""
    h = procfs_env
    mnt = h.path("procfs")
    opts = ["-o", "respawn_delay=0"]
    m = mount_procfs(h, mnt, opts=opts)
    cg = limited_cgroups(h, mem=230 * MiB)
    c = Container(h, mnt, cg)
    assert _read_meminfo_total(c) == 230 * 1024
    worker = m.daemon.proc.pid
    holders = [p for p in _procs_mentioning(mnt) if p != worker]
    assert len(holders) == 1
    os.kill(holders[0], signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline:
        new = [p for p, cmd in _procs_mentioning(mnt).items()
               if cmd.startswith("veneer-procfs: holder ") and p != holders[0]]
        if new:
            break
        time.sleep(0.05)
    assert new, m.daemon.output()
    assert _read_meminfo_total(c) == 230 * 1024
    m.daemon.stop(signal.SIGKILL)
    m.daemon = start_procfs(h, mnt, opts=opts)
    assert _read_meminfo_total(c) == 230 * 1024


def _disk_of(path):
    """major:minor of the whole disk holding path (blkio rules take disks, not partitions)."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysdir = os.path.realpath(f"/sys/dev/block/{dev}")
    if os.path.exists(os.path.join(sysdir, "partition")):
        with open(os.path.join(os.path.dirname(sysdir), "dev")) as f:
            dev = f.read().strip()
    return dev


def test_diskstats_and_loadavg_of_a_busy_container(procfs_env):
    h = procfs_env
    require(os.path.isdir("/sys/fs/cgroup/blkio"), "needs the cgroup v1 blkio hierarchy")
    m = mount_procfs(h)
    cg = limited_cgroups(h, mem=256 * MiB, quota=0.5)
    dev = _disk_of(h.tmp)
    require(os.path.exists(f"/sys/dev/block/{dev}"), f"no block device behind {h.tmp}")
    # v1 blkio accounts a cgroup's I/O per device once a throttle rule exists (set far above use).
    with open(os.path.join(cg["blkio"], "blkio.throttle.write_bps_device"), "w") as f:
        f.write(f"{dev} 10000000000")
    c = Container(h, m.path, cg)
    def written():
        lines = c.run("cat /proc/diskstats").splitlines()
        assert len(lines) <= 1, lines  # only the device this cgroup did I/O on
        return lines[0].split() if lines else None

    before = written()
    c.run(f"dd if=/dev/zero of={h.tmp}/io.bin bs=1M count=8 oflag=direct status=none")
    f = written()
    assert f is not None and f"{f[0]}:{f[1]}" == dev
    with open("/proc/diskstats") as hf:
        host = next(line.split() for line in hf if line.split()[:2] == f[:2])
    assert len(f) == len(host) and f[2] == host[2]  # same name column and field count
    old_sectors = int(before[9]) if before else 0
    old_writes = int(before[7]) if before else 0
    assert int(f[9]) - old_sectors >= 8 * MiB // 512, (before, f)  # sectors written
    assert int(f[7]) - old_writes >= 1  # writes completed

    # Load: register for sampling, run 3 busy loops, wait for two 5 s samples.
    assert float(c.run("cat /proc/loadavg").split()[0]) < 0.3
    c.run("for i in 1 2 3; do (while :; do :; done) </dev/null >/dev/null 2>&1 & done; exit 0")
    end = time.time() + 30  # the first samples come after 5 and 10 s
    load = c.run("cat /proc/loadavg").split()
    while float(load[0]) <= 0.2 and time.time() < end:
        time.sleep(1)
        load = c.run("cat /proc/loadavg").split()
    assert float(load[0]) > 0.2, load
    running, total = (int(x) for x in load[3].split("/"))
    assert running >= 1 and total >= 4, load
    assert int(load[4]) < 1000, "the last pid must be the container's, not the host's"


def test_cgroup_root_option_for_nested_setups(procfs_env):
    """The hierarchies bind-mounted elsewhere (as a daemon in a container would see
    the host's): -o cgroup_root= finds them there and only there."""
    h = procfs_env
    root = h.mkdir("cgroupfs")
    for ctrl in ("memory", "cpu", "cpuacct", "cpuset"):
        d = h.mkdir("cgroupfs", ctrl)
        subprocess.run(["mount", "--bind", f"/sys/fs/cgroup/{ctrl}", d], check=True)
        h.defer(subprocess.run, ["umount", "-l", d])
    m = mount_procfs(h, opts=["-o", f"cgroup_root={root}"])
    cg = limited_cgroups(h, mem=210 * MiB, cpus="0")
    c = Container(h, m.path, cg)
    assert _read_meminfo_total(c) == 210 * 1024
    assert c.run("grep -c ^processor /proc/cpuinfo").strip() == "1"


def test_dead_mount_is_replaced(procfs_env):
    """Holder and worker killed together: the mount is dead (ENOTCONN); a new start
    detaches it and mounts afresh."""
    h = procfs_env
    mnt = h.path("procfs")
    m = mount_procfs(h, mnt, opts=["-o", "respawn_delay=0"])
    for pid in _procs_mentioning(mnt):
        os.kill(pid, signal.SIGKILL)
    m.daemon.wait(10)
    deadline = time.time() + 10
    while _procs_mentioning(mnt) and time.time() < deadline:
        time.sleep(0.05)
    assert errno_of(os.stat, mnt) in (errno.ENOTCONN, errno.ECONNABORTED)
    m.daemon = start_procfs(h, mnt)
    with open(os.path.join(mnt, "proc/meminfo")) as f:
        assert f.readline().startswith("MemTotal:")


def test_holder_refuses_other_users(procfs_env):
    """The holder's socket is root's alone (in /run/veneer-procfs, 0700, and the holder
    checks its peer): a non-root process must not receive the FUSE connection."""
    import hashlib
    h = procfs_env
    mnt = h.path("procfs")
    mount_procfs(h, mnt)
    name = "/run/veneer-procfs/mnt-" + hashlib.sha256(
        os.path.realpath(mnt).encode()).hexdigest()[:40]
    probe = (
        "import socket, struct\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
        "s.settimeout(5)\n"
        "try:\n"
        f"    s.connect({name!r})\n"
        "    s.send(struct.pack('I', 1))\n"
        "    msg, anc, flags, addr = s.recvmsg(4096, socket.CMSG_SPACE(16 * 4))\n"
        "except OSError as e:\n"
        "    msg, anc = b'', []\n"
        "print(len(msg), len(anc))\n")
    # As root the socket answers with a WELCOME and fds (the protocol works) ...
    r = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.split()[1] != "0", r.stderr
    # ... as nobody it is closed without anything.
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        PY, "-c", probe], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0"]
    with open(os.path.join(mnt, "proc/meminfo")) as f:
        assert f.readline().startswith("MemTotal:")


def test_upgrade_binary_replaced_in_place(procfs_env):
    """A package upgrade replaces the binary file: a restarted (or respawned) worker
    runs the new one on the same connection, with no remount."""
    import shutil
    h = procfs_env
    exe = os.path.join(h.mkdir("bin"), "veneer-procfs")
    shutil.copy2(procfs_bin(), exe)
    mnt = h.path("procfs")
    m = mount_procfs(h, mnt, opts=["-o", "respawn_delay=200"], binary=exe)
    cg = limited_cgroups(h, mem=250 * MiB)
    c = Container(h, mnt, cg)
    assert _read_meminfo_total(c) == 250 * 1024
    shutil.copy2(procfs_bin(), exe + ".new")
    os.rename(exe + ".new", exe)  # a new inode at the same path, like dpkg does
    new_ino = os.stat(exe).st_ino
    m.daemon.stop(signal.SIGKILL)
    assert _read_meminfo_total(c) == 250 * 1024  # served by the respawned worker
    running_new = [p for p in _procs_mentioning(mnt)
                   if os.stat(f"/proc/{p}/exe").st_ino == new_ino]
    assert running_new, "the respawned worker must run the replaced binary"


def test_background_start_returns_and_unmount_ends_it(procfs_env):
    """Without -f the command returns once mounted, keeps none of the caller's pipes
    open, and unmounting ends worker and holder."""
    h = procfs_env
    mnt = h.mkdir("procfs")

    def gone():
        if mounted_at(mnt):
            subprocess.run(["umount", "-l", mnt])
        deadline = time.time() + 15
        while _procs_mentioning(mnt) and time.time() < deadline:
            time.sleep(0.05)
        for pid in _procs_mentioning(mnt):
            os.kill(pid, signal.SIGKILL)
    h.defer(gone)
    r = subprocess.run([procfs_bin(), mnt], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert mounted_at(mnt)
    with open(os.path.join(mnt, "proc/meminfo")) as f:
        assert f.readline().startswith("MemTotal:")
    assert len(_procs_mentioning(mnt)) == 2  # worker and holder
    subprocess.run(["umount", mnt], check=True)
    deadline = time.time() + 15
    while _procs_mentioning(mnt) and time.time() < deadline:
        time.sleep(0.05)
    assert not _procs_mentioning(mnt)


def test_container_in_root_cgroups_reads_host_files(procfs_env):
    """New pid + mount namespaces but no cgroup of its own: nothing is limited, so
    every file is the host's (uptime included)."""
    h = procfs_env
    m = mount_procfs(h)
    roots = {c: f"/sys/fs/cgroup/{c}" for c in
             ("memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "systemd")
             if os.path.isdir(f"/sys/fs/cgroup/{c}")}
    c = Container(h, m.path, roots)
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    assert float(c.run("cat /proc/uptime").split()[0]) == pytest.approx(host_up, abs=3)
    assert meminfo_kb(c.run("cat /proc/meminfo"), "MemTotal") == \
        meminfo_kb(open("/proc/meminfo").read(), "MemTotal")
    strip = lambda t: re.sub(r"cpu MHz.*", "", t)
    assert strip(c.run("cat /proc/cpuinfo")) == strip(open("/proc/cpuinfo").read())
    with open("/sys/devices/system/cpu/online") as f:
        assert c.run("cat /sys/devices/system/cpu/online") == f.read()
    assert len(c.run("cat /proc/loadavg").split()) == 5
