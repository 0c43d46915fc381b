# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-run with veneer-procfs: the limits seen from inside through free, top, nproc,
/proc/cpuinfo and uptime, and the one shared veneer-procfs instance veneer-run starts
when none runs and reuses otherwise."""
import os
import signal
import subprocess
import time

import pytest

from test_run import Runner
from veneer_harness import build_path, lazy_umount, mounted_at, pids_mentioning, require


@pytest.fixture
def procfs_mount(harness, need_fuse):
    path = build_path("procfs/veneer-procfs")
    require(os.access(path, os.X_OK), f"{path} is not built")
    m = harness.mount_fuse([path], harness.path("procfs"))
    return m.path


@pytest.fixture
def vr_procfs(harness, run_bin, need_fuse, procfs_mount):
    """veneer-run with this test's own veneer-procfs instance."""
    require(os.access(build_path("unionfs/veneer-unionfs"), os.X_OK), "veneer-unionfs is not built")
    return Runner(harness, run_bin, procfs_mount)


# --- limits seen from inside -------------------------------------------------------------
def test_limits_visible_inside(vr_procfs):
    vr = vr_procfs
    script = r"""
free -m | awk '/^Mem:/ {print "free", $2}'
echo "nproc $(nproc)"
echo "cpuinfo $(grep -c ^processor /proc/cpuinfo)"
echo "online $(cat /sys/devices/system/cpu/online)"
top -b -n1 | awk '/MiB Mem/ {print "top", $4}'
echo "uptime $(cut -d' ' -f1 /proc/uptime)"
uptime | sed 's/^/uptimecmd /'
echo "bound $(grep -cE ' /proc/(meminfo|cpuinfo|stat|uptime|loadavg) .* - fuse' /proc/self/mountinfo)"
"""
    r = vr.run(["--memory", "256M", "--cpus", "0.5", "--", "sh", "-c", script])
    assert r.returncode == 0, r.stderr
    got = dict(line.split(" ", 1) for line in r.stdout.strip().splitlines())
    assert got["free"] == "256"
    assert got["nproc"] == "1"
    assert got["cpuinfo"] == "1"
    assert got["online"] == "0"
    assert float(got["top"]) == 256.0
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    # The container's uptime counts from its own start, not the host's boot.
    assert float(got["uptime"]) < 30 < host_up or float(got["uptime"]) < host_up
    assert "load average" in got["uptimecmd"]
    assert got["bound"] == "5"


# --- the shared veneer-procfs ------------------------------------------------------------
def test_procfs_started_once_and_reused(harness, run_bin, need_fuse):
    for b in ("unionfs/veneer-unionfs", "procfs/veneer-procfs"):
        require(os.access(build_path(b), os.X_OK), f"{b} is not built")
    vr = Runner(harness, run_bin, None)
    mnt = harness.path("shared-procfs")

    def stop_shared():
        if mounted_at(mnt):
            subprocess.run(["umount", mnt], capture_output=True)
            if mounted_at(mnt):
                lazy_umount(mnt)
        end = time.time() + 10
        while pids_mentioning(mnt) and time.time() < end:
            time.sleep(0.1)
        for pid, _ in pids_mentioning(mnt):
            os.kill(pid, signal.SIGKILL)
    harness.defer(stop_shared)
    args = ["--procfs-mount", mnt, "--procfs", build_path("procfs/veneer-procfs"),
            "--memory", "200M", "--", "sh", "-c", "free -m | awk '/^Mem:/ {print $2}'"]
    r = vr.run(args, procfs=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "200"
    assert mounted_at(mnt)
    daemons = sorted(pid for pid, _ in pids_mentioning(mnt))
    assert daemons
    r = vr.run(args, procfs=None)
    assert r.returncode == 0 and r.stdout.strip() == "200", r.stderr
    assert sorted(pid for pid, _ in pids_mentioning(mnt)) == daemons


# --- CPU topology seen from inside (issue 11) ----------------------------------------------
TOPOLOGY_SCRIPT = r"""
lscpu | sed -n 's/^\(CPU(s)\|On-line CPU(s) list\|Core(s) per socket\|Socket(s)\|Thread(s) per core\): *\(.*\)$/lscpu \1=\2/p'
awk -F'\t*: *' '/^(processor|physical id|siblings|core id|cpu cores|apicid|initial apicid)\t/ {
    printf "cpuinfo %s=%s\n", $1, $2 }' /proc/cpuinfo
echo "online $(cat /sys/devices/system/cpu/online)"
echo "stat $(grep '^cpu' /proc/stat | cut -d' ' -f1 | tr '\n' ' ')"
echo "nproc $(nproc)"
"""


@pytest.mark.parametrize("limit", [["--cpuset-cpus", "1"], ["--cpus", "1"]],
                         ids=["cpuset-1", "cpus-1"])
def test_cpu_topology_agrees_inside(vr_procfs, limit):
    """One CPU (host CPU 1 by cpuset, or the first by quota) is processor 0 of a package
    with one core: cpuinfo's topology lines, lscpu, /proc/stat, online and nproc agree
    (cpuinfo used to keep the host's siblings 2, cpu cores 2, core id 1, apicid 1)."""
    require(subprocess.run(["sh", "-c", "command -v lscpu"], capture_output=True).returncode
            == 0, "lscpu (util-linux) is not installed")
    r = vr_procfs.run([*limit, "--", "sh", "-c", TOPOLOGY_SCRIPT])
    assert r.returncode == 0, r.stderr
    got = {}
    for line in r.stdout.strip().splitlines():
        kind, _, rest = line.partition(" ")
        got.setdefault(kind, []).append(rest.strip())
    cpuinfo = dict(x.split("=", 1) for x in got["cpuinfo"])
    assert cpuinfo == {"processor": "0", "physical id": "0", "siblings": "1", "core id": "0",
                       "cpu cores": "1", "apicid": "0", "initial apicid": "0"}, got["cpuinfo"]
    assert len([x for x in got["cpuinfo"] if x.startswith("processor=")]) == 1
    lscpu = dict(x.split("=", 1) for x in got["lscpu"])
    assert lscpu["CPU(s)"] == "1", got["lscpu"]
    assert lscpu["On-line CPU(s) list"] == "0"
    assert lscpu["Core(s) per socket"] == "1" and lscpu["Socket(s)"] == "1"
    assert lscpu["Thread(s) per core"] == "1"
    assert got["online"] == ["0"]
    assert got["stat"] == ["cpu cpu0"]
    assert got["nproc"] == ["1"]
