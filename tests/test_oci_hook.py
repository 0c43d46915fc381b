# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-oci-hook, the OCI hook that binds veneer-procfs's files into
containers of podman, CRI-O or any OCI runtime.

The first tests drive the hook as a runtime does at the prestart stage, on a
container made here: a process in new pid and mount namespaces and limited
cgroups, whose root filesystem directory has proc and sysfs mounted below it
(pivot_root not done yet), a bundle with its config.json, and the OCI state
on the hook's stdin. They check the mounts in the container's namespace, what
is read through them, the CPU affinity, and that every way veneer-procfs can
be unusable (absent, dead, hung), an opt-out annotation, a /proc covered
already and a symlinked /proc leave the container as it was and exit 0.
The last ones run a private podman with the hook in its hooks dir.
"""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from podman_util import HOST_TOOLS, TOOLS_IMAGE, Podman
from procfs_util import CPU_FILES, PROC_FILES, limited_cgroups, mount_procfs
from veneer_harness import build_path, pids_mentioning, require

MiB = 1 << 20
FILES = [f"proc/{f}" for f in PROC_FILES] + [f"sys/devices/system/cpu/{f}" for f in CPU_FILES]


def hook_bin():
    return build_path("hook/veneer-oci-hook")


@pytest.fixture
def hook_env(harness, need_fuse):
    require(os.access(hook_bin(), os.X_OK), f"{hook_bin()} is not built")
    require(os.cpu_count() >= 2, "the affinity checks need 2 CPUs")


class Bundle:
    """A created, not yet started container: new pid+mount namespaces, proc and sysfs
    mounted below its root directory, an OCI bundle describing it."""

    def __init__(self, h, quota=1.0, mem=256 * MiB, proc_symlink=False, annotations=None,
                 config_annotations=None, namespaces=("pid", "mount")):
        self.h = h
        self.root = h.mkdir(f"bundle-{id(self)}", "rootfs")
        self.dir = os.path.dirname(self.root)
        for d in ("sys", "etc", "tmp"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        if proc_symlink:
            # What a hostile image can do: runc resolves the symlink inside the root
            # (and mounts proc on rootfs/etc); followed from outside it is the host's /etc.
            os.symlink("/etc", os.path.join(self.root, "proc"))
            proc_at = os.path.join(self.root, "etc")
        else:
            os.makedirs(os.path.join(self.root, "proc"))
            proc_at = os.path.join(self.root, "proc")
        self.cgroups = limited_cgroups(h, mem=mem, quota=quota or None)
        ready = os.path.join(self.dir, "ready")
        script = (f"set -e; mount -t proc proc {proc_at}; mount -t sysfs sysfs {self.root}/sys; "
                  f"touch {ready}; exec sleep 100000")
        join = "".join(f"echo $$ > {d}/cgroup.procs; " for d in self.cgroups.values())
        self.proc = subprocess.Popen(
            ["sh", "-c", join + 'exec unshare -pmf --propagation private sh -c "$0"', script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True)
        h.defer(self.stop)
        deadline = time.time() + 20
        while not os.path.exists(ready):
            assert self.proc.poll() is None and time.time() < deadline, \
                self.proc.stderr.read().decode(errors="replace")
            time.sleep(0.02)
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            self.pid = int(f.read().split()[0])
        config = {
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": t} for t in namespaces],
                      "resources": {"cpu": {"quota": int(quota * 100000), "period": 100000}}},
        }
        if config_annotations:
            config["annotations"] = config_annotations
        with open(os.path.join(self.dir, "config.json"), "w") as f:
            json.dump(config, f)
        self.state = {"ociVersion": "1.0.2", "id": f"c{id(self)}", "status": "created",
                      "pid": self.pid, "bundle": self.dir, "annotations": annotations or {}}

    def hook(self, mnt, *args, state=None, timeout=30):
        return subprocess.run([hook_bin(), f"--procfs-mount={mnt}", "--log=stderr", *args,
                               "prestart"],
                              input=json.dumps(state or self.state), capture_output=True,
                              text=True, timeout=timeout)

    def mounts(self):
        """(mount point, fs type) of the container's namespace below its root."""
        out = []
        with open(f"/proc/{self.pid}/mountinfo") as f:
            for line in f:
                a = line.split()
                fstype = a[a.index("-") + 1]
                if a[4].startswith(self.root + "/"):
                    out.append((a[4][len(self.root) + 1:], fstype))
        return out

    def veneer_mounts(self):
        return sorted(mp for mp, t in self.mounts() if t == "fuse.veneer-procfs")

    def read(self, path):
        """Read path as the container's own processes do (its pid namespace, its cgroups)."""
        join = "".join(f"echo $$ > {d}/cgroup.procs; " for d in self.cgroups.values())
        r = subprocess.run(["sh", "-c", join + f'exec nsenter -t {self.pid} -m -p cat "$0"',
                            os.path.join(self.root, path)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def affinity(self):
        return os.sched_getaffinity(self.pid)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc.stderr.close()


def meminfo_total(text):
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no MemTotal in {text!r}")


def host_memtotal():
    with open("/proc/meminfo") as f:
        return meminfo_total(f.read())


def test_binds_every_file_and_narrows_the_affinity(harness, hook_env):
    mnt = mount_procfs(harness).path
    b = Bundle(harness, quota=1.0, mem=256 * MiB)
    assert len(b.affinity()) >= 2
    r = b.hook(mnt, "-d")
    assert r.returncode == 0, r.stderr
    assert b.veneer_mounts() == sorted(FILES), r.stderr
    assert meminfo_total(b.read("proc/meminfo")) == 256 * MiB
    assert b.read("sys/devices/system/cpu/online").strip() == "0"
    assert b.read("proc/cpuinfo").count("processor\t:") == 1
    assert float(b.read("proc/uptime").split()[0]) < 60
    # nproc counts sched_getaffinity(): one CPU, the one veneer-procfs shows.
    assert b.affinity() == {0}
    assert "10 files" in r.stderr
    # The hook's own namespace is untouched.
    assert not [m for m in open("/proc/self/mountinfo").read().split("\n")
                if f" {b.root}/proc/" in m]


def test_no_affinity_option_and_no_quota(harness, hook_env):
    mnt = mount_procfs(harness).path
    b = Bundle(harness, quota=1.0)
    assert b.hook(mnt, "--no-affinity").returncode == 0
    assert len(b.veneer_mounts()) == len(FILES)
    assert len(b.affinity()) == os.cpu_count()
    b2 = Bundle(harness, quota=0)
    assert b2.hook(mnt).returncode == 0
    assert len(b2.veneer_mounts()) == len(FILES)
    assert len(b2.affinity()) == os.cpu_count()


def test_without_veneer_procfs_the_container_is_left_alone(harness, hook_env):
    b = Bundle(harness)
    before = b.mounts()
    empty = harness.mkdir("not-mounted")
    r = b.hook(empty)
    assert r.returncode == 0
    assert "not running" in r.stderr and "/proc left as it is" in r.stderr
    r = b.hook(harness.path("missing"))
    assert r.returncode == 0 and "no veneer-procfs" in r.stderr
    assert b.mounts() == before
    assert meminfo_total(b.read("proc/meminfo")) == host_memtotal()
    assert len(b.affinity()) == os.cpu_count()


def _daemons_of(mnt):
    return [pid for pid, _ in pids_mentioning(mnt)]


def test_dead_or_hung_veneer_procfs_is_left_alone(harness, hook_env):
    b = Bundle(harness)
    before = b.mounts()
    # Hung: holder and worker stopped; the probe's read waits, the hook gives up.
    mnt = mount_procfs(harness, mnt=harness.path("hung")).path
    pids = _daemons_of(mnt)
    assert len(pids) >= 2
    for p in pids:
        os.kill(p, signal.SIGSTOP)

    def cont():
        for p in pids:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
    harness.defer(cont)
    t0 = time.monotonic()
    r = b.hook(mnt, "--timeout=500")
    took = time.monotonic() - t0
    assert r.returncode == 0
    assert "did not answer within 500 ms" in r.stderr
    assert took < 10, f"the hook held the container for {took:.1f} s"
    assert b.mounts() == before
    cont()
    # Dead: every process of the mount killed, the mount left behind (ENOTCONN).
    dead = mount_procfs(harness, mnt=harness.path("dead")).path
    for p in _daemons_of(dead):
        os.kill(p, signal.SIGKILL)
    deadline = time.time() + 10
    while _daemons_of(dead) and time.time() < deadline:
        time.sleep(0.05)
    r = b.hook(dead)
    assert r.returncode == 0
    assert "is dead" in r.stderr
    assert b.mounts() == before
    assert len(b.affinity()) == os.cpu_count()


def test_annotation_opts_out(harness, hook_env):
    mnt = mount_procfs(harness).path
    for kw in ({"annotations": {"io.veneer.procfs": "off"}},
               {"config_annotations": {"io.veneer.procfs": "false"}}):
        b = Bundle(harness, **kw)
        r = b.hook(mnt, "-d")
        assert r.returncode == 0 and "left alone" in r.stderr
        assert b.veneer_mounts() == []
        assert len(b.affinity()) == os.cpu_count()
    b = Bundle(harness, annotations={"io.veneer.procfs": "on"})
    assert b.hook(mnt).returncode == 0
    assert len(b.veneer_mounts()) == len(FILES)


def test_covered_proc_and_second_run_are_left_whole(harness, hook_env):
    mnt = mount_procfs(harness).path
    b = Bundle(harness)
    assert b.hook(mnt).returncode == 0
    first = b.veneer_mounts()
    assert len(first) == len(FILES)
    # A second run (hook listed twice, or lxcfs first): nothing stacked.
    r = b.hook(mnt)
    assert r.returncode == 0 and "covered already" in r.stderr
    assert b.veneer_mounts() == first
    # Another container whose /proc/meminfo something else covers: nothing of ours at all.
    b2 = Bundle(harness)
    other = harness.path("other-meminfo")
    with open(other, "w") as f:
        f.write("MemTotal: 1 kB\n")
    subprocess.run(["nsenter", "-t", str(b2.pid), "-m", "mount", "--bind", other,
                    os.path.join(b2.root, "proc/meminfo")], check=True)
    r = b2.hook(mnt)
    assert r.returncode == 0 and "covered already" in r.stderr
    assert b2.veneer_mounts() == []


def test_symlinked_proc_in_the_image_is_not_followed(harness, hook_env):
    """rootfs/proc -> /etc: followed from outside the root it would be the host's /etc."""
    mnt = mount_procfs(harness).path
    b = Bundle(harness, proc_symlink=True)
    r = b.hook(mnt, "-d")
    assert r.returncode == 0, r.stderr
    mounts = b.veneer_mounts()
    assert not [m for m in mounts if m.startswith("proc/") or m.startswith("etc/")], mounts
    with open(f"/proc/{b.pid}/mountinfo") as f:
        assert not [ln for ln in f if " /etc/" in ln and "veneer-procfs" in ln]
    # sysfs was a plain directory: its files are covered.
    assert mounts == sorted(f for f in FILES if f.startswith("sys/"))


def test_no_mount_namespace_and_bad_input(harness, hook_env):
    mnt = mount_procfs(harness).path
    b = Bundle(harness, namespaces=("pid",))
    r = b.hook(mnt)
    assert r.returncode == 0 and "no mount namespace" in r.stderr
    assert b.veneer_mounts() == []
    for args, state, msg in (
            (["--frob"], b.state, "unknown option '--frob'"),
            (["--timeout=0"], b.state, "bad value '0' for --timeout"),
            (["--log=file"], b.state, "bad value 'file' for --log"),
            (["--procfs-mount=rel"], b.state, "bad value 'rel' for --procfs-mount"),
            ([], "not json", "is not JSON"),
            ([], {"bundle": b.dir}, "no usable \"pid\""),
            ([], {"pid": b.pid, "bundle": "rel"}, "no absolute \"bundle\"")):
        r = subprocess.run([hook_bin(), f"--procfs-mount={mnt}", *args, "prestart"],
                           input=state if isinstance(state, str) else json.dumps(state),
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 2, (args, state, r.stderr)
        assert msg in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    r = subprocess.run([hook_bin(), "nosuchstage"], input="", capture_output=True, text=True)
    assert r.returncode == 2 and "unknown stage 'nosuchstage'" in r.stderr
    # Configured at a stage with nothing to do, it does nothing, whatever stdin holds.
    r = subprocess.run([hook_bin(), "poststop"], input="", capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert b.veneer_mounts() == []


# --- a private podman with the hook in its hooks dir ----------------------------------------


def _hooks_dir(harness, mnt, name="hooks.d"):
    d = harness.mkdir(name)
    with open(os.path.join(d, "veneer-procfs.json"), "w") as f:
        json.dump({"version": "1.0.0",
                   "hook": {"path": hook_bin(),
                            "args": ["veneer-oci-hook", f"--procfs-mount={mnt}", "prestart"]},
                   "when": {"always": True}, "stages": ["prestart"]}, f)
    return d


def _hooked_podman(harness, mounted):
    """A podman whose hook uses a veneer-procfs of the test (mounted first: podman's
    namespace is made then, and the host's / here is a private mount: no propagation)."""
    require(shutil.which("podman") is not None, "podman is not installed")
    require(shutil.which("runc") is not None, "runc is not installed")
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    mnt = harness.mkdir("procfs-for-podman")
    if mounted:
        mount_procfs(harness, mnt=mnt)
    pm = Podman(harness, hooks_dir=_hooks_dir(harness, mnt))
    pm.import_busybox(harness, TOOLS_IMAGE, HOST_TOOLS)
    return pm


# Debian's free, top and uptime (procps) and nproc (coreutils), as in a Debian image; by
# path: busybox's shell runs its own applets before $PATH.
LIMITS_SCRIPT = ("/usr/bin/free -b | awk '/^Mem:/ {print \"mem\", $2}'; "
                 "echo nproc $(/usr/bin/nproc); "
                 "echo uptime $(cut -d' ' -f1 /proc/uptime); "
                 "echo online $(cat /sys/devices/system/cpu/online); "
                 "/usr/bin/top -b -n1 | awk '/^MiB Mem/ {print \"top\", $4}'; "
                 "/usr/bin/uptime | sed 's/^/uptime1 /'")


def _limits(out):
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_podman_container_sees_its_limits_with_no_flag(harness, hook_env):
    pm = _hooked_podman(harness, mounted=True)
    r = pm("run", "--rm", "--network", "none", *pm.run_opts, "--memory", "256m", "--cpus", "1",
           TOOLS_IMAGE, "sh", "-c", LIMITS_SCRIPT)
    got = _limits(r.stdout)
    assert got["mem"] == str(256 * MiB), r.stdout
    assert got["nproc"] == "1" and got["online"] == "0", r.stdout
    assert got["top"] == "256.0", r.stdout
    assert " up 0 min," in got["uptime1"], r.stdout
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    assert float(got["uptime"]) < min(30, host_up), r.stdout
    # Opted out by annotation: the kernel's files.
    r = pm("run", "--rm", "--network", "none", *pm.run_opts, "--memory", "256m", "--cpus", "1",
           "--annotation", "io.veneer.procfs=off", TOOLS_IMAGE, "sh", "-c", LIMITS_SCRIPT)
    got = _limits(r.stdout)
    assert int(got["mem"]) == host_memtotal() and got["nproc"] == str(os.cpu_count()), r.stdout


def test_podman_container_starts_without_veneer_procfs(harness, hook_env):
    pm = _hooked_podman(harness, mounted=False)
    r = pm("run", "--rm", "--network", "none", *pm.run_opts, "--memory", "256m", "--cpus", "1",
           TOOLS_IMAGE, "sh", "-c", LIMITS_SCRIPT)
    got = _limits(r.stdout)
    assert int(got["mem"]) == host_memtotal(), r.stdout
    assert got["nproc"] == str(os.cpu_count()), r.stdout

