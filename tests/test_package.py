# SPDX-License-Identifier: GPL-2.0-or-later
"""The Debian package, installed and used as a user would, then purged.

The .deb is built from the working tree (deb_util, scripts/build-deb). It is installed with
`apt-get install ./veneer_*.deb` into this machine seen through a copy-on-write overlay
(machine_util.Machine): apt and dpkg work on the machine's own root and dpkg database, but
nothing reaches the live system, where other tests run at the same time (and where podman's
global hooks dirs must not gain our hook).

PID 1 here is not systemd, so this test runs the unit's own command lines by hand, as
systemd would: ExecStartPre, ExecStart with $NOTIFY_SOCKET (it must report READY=1 with its
MAINPID), a SIGKILL of the main process followed by ExecStart again (Restart=always),
ExecReload, ExecStop with and without $EXIT_CODE. test_systemd_unit.py boots systemd for
real. podman, with its default hooks dirs (so with the package's hooks.d file) and
veneer-unionfs as its mount program (the package's storage.conf snippet), runs containers
that show their limits with no flag, and keep reading while the worker is killed, reloaded,
upgraded (reinstalled) and the mount is stopped under them. Purge must leave no file,
mount or process of veneer.
"""
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import tomllib

from deb_util import meson_version
from machine_util import Machine
from podman_util import HOST_TOOLS, TOOLS_IMAGE, Podman
from veneer_harness import REPO, require

MNT = "/var/lib/veneer/procfs"
MiB = 1 << 20


def test_lintian_is_clean_and_each_override_explained(deb):
    require(shutil.which("lintian") is not None, "lintian is not installed (scripts/bootstrap)")
    r = subprocess.run(["lintian", "--allow-root", "--pedantic", "--display-experimental",
                        "--display-info", "--fail-on", "error,warning,info,pedantic,experimental",
                        deb], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "", r.stdout + r.stderr
    with open(os.path.join(REPO, "debian", "veneer.lintian-overrides")) as f:
        lines = f.read().splitlines()
    overrides = [i for i, ln in enumerate(lines) if ln.startswith("veneer:")]
    assert overrides
    for i in overrides:
        # Each override follows a comment (or another override that the comment covers).
        j = i - 1
        while j >= 0 and lines[j].startswith("veneer:"):
            j -= 1
        assert j >= 0 and lines[j].startswith("#"), f"override without a reason: {lines[i]}"


def test_version_comes_from_meson(deb):
    r = subprocess.run(["dpkg-deb", "-f", deb, "Version", "Depends"], capture_output=True,
                       text=True, check=True)
    fields = dict(ln.split(": ", 1) for ln in r.stdout.splitlines())
    assert fields["Version"] == meson_version()
    depends = [d.split()[0] for d in fields["Depends"].split(", ")]
    for lib in ("fuse3", "libfuse3-3", "libglib2.0-0", "libcgroup2", "libjson-glib-1.0-0",
                "libseccomp2", "libcap-ng0", "libbpf1", "liburing2", "libsystemd0", "libc6"):
        assert lib in depends, fields["Depends"]


def parse_unit(path):
    """The [Service] command lines of a unit, as systemd would run them: the '-' prefix
    (failure ignored) taken off, "$$" unescaped. Our units have one line per key."""
    out = {}
    section = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line and line.split("=")[0].startswith("Exec"):
                key, value = line.split("=", 1)
                ignore = value.startswith("-")
                argv = shlex.split(value.lstrip("-").replace("$$", "$"))
                out.setdefault(key, []).append((argv, ignore))
    return out


class Service:
    """veneer-procfs.service run by hand in the machine, as systemd runs it."""

    def __init__(self, harness, m):
        self.m = m
        self.unit = parse_unit(m.host_path("/lib/systemd/system/veneer-procfs.service"))
        self.notify_path = harness.path("notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.notify_path)
        self.main = None
        self.procs = []
        harness.defer(self.close)

    def notified(self, timeout=30):
        """The next sd_notify message: its fields."""
        self.sock.settimeout(timeout)
        msg = self.sock.recv(4096).decode()
        return dict(ln.split("=", 1) for ln in msg.splitlines())

    def _run(self, key, env=None):
        for argv, ignore in self.unit[key]:
            r = self.m.run(shlex.join(argv), check=False, env=env)
            assert ignore or r.returncode == 0, (key, argv, r.stderr)

    def start(self):
        """ExecStartPre, then ExecStart; returns once READY=1 came, with the main pid."""
        if "ExecStartPre" in self.unit:
            self._run("ExecStartPre")
        (argv, _), = self.unit["ExecStart"]
        p = self.m.popen(argv, env={"NOTIFY_SOCKET": self.notify_path},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        # A worker the holder started meanwhile (its respawn) may have spoken first.
        while True:
            msg = self.notified()
            assert msg.get("READY") == "1", msg
            if int(msg["MAINPID"]) == p.pid:
                break
        self.main = p.pid
        return p

    def reload(self):
        self._run("ExecReload", env={"NOTIFY_SOCKET": self.notify_path})

    def stop(self, exit_code=None):
        self._run("ExecStop", env={"EXIT_CODE": exit_code} if exit_code else None)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.sock.close()


def _holders(m, svc):
    """veneer-procfs's holder: titled so, or (older builds) the veneer-procfs that is not
    the main process and was not started by the holder."""
    procs = [p for p in m.pids() if "veneer-procfs" in m.cmdline(p)]
    titled = [p for p in procs if m.cmdline(p).startswith("veneer-procfs: holder")]
    if titled or any(m.cmdline(p).startswith("veneer-procfs: ") for p in procs):
        return titled
    return [p for p in procs if p != svc.main and "--internal-worker" not in m.cmdline(p)]


def _veneer_pids(m):
    return [p for p in m.pids() if "veneer" in m.cmdline(p)]


def _mounted(m):
    """veneer mounts of the view (its /tmp is the host's, with other tests' mounts)."""
    return [(mp, t) for mp, t in m.mounts() if mp == m.path(MNT) or (
        "veneer" in t and mp.startswith(m.root + "/") and not mp.startswith(m.path("/tmp/")))]


class Reader:
    """A container reading free -b in a loop into a log of the test."""

    def __init__(self, pm, harness, name):
        self.out = harness.mkdir(f"reader-{name}")
        self.name = name
        script = ("while :; do if /usr/bin/free -b > /tmp/f 2>/tmp/e; then "
                  "awk '/^Mem:/ {print $2}' /tmp/f >> /out/log; else "
                  "echo ERR $(cat /tmp/e) >> /out/log; fi; sleep 0.1; done")
        pm("run", "-d", "--name", name, *pm.run_opts, "--memory", "256m", "--cpus", "1",
           "-v", f"{self.out}:/out", TOOLS_IMAGE, "sh", "-c", script)

    def lines(self):
        try:
            with open(os.path.join(self.out, "log")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def keeps_reading(self, what, seconds=1.5):
        """New reads after `what`, every one of them the limit, none failed."""
        before = len(self.lines())
        deadline = time.time() + 20
        while len(self.lines()) < before + 5 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(seconds)
        lines = self.lines()
        assert len(lines) >= before + 5, f"{self.name} stopped reading after {what}: {lines[-5:]}"
        bad = [ln for ln in lines if ln != str(256 * MiB)]
        assert not bad, f"{self.name} after {what}: {bad[:5]}"


LIMITS = ("/usr/bin/free -b | awk '/^Mem:/ {print \"mem\", $2}'; echo nproc $(/usr/bin/nproc); "
          "echo uptime $(cut -d' ' -f1 /proc/uptime); "
          "/usr/bin/top -b -n1 | awk '/^MiB Mem/ {print \"top\", $4}'")


def _limits(pm):
    r = pm("run", "--rm", *pm.run_opts, "--memory", "256m", "--cpus", "1", TOOLS_IMAGE,
           "sh", "-c", LIMITS)
    return dict(ln.split(" ", 1) for ln in r.stdout.splitlines() if " " in ln)


def _tree(path):
    """None when path is missing, else the names below it (relative, sorted)."""
    if not os.path.lexists(path):
        return None
    return sorted(os.path.relpath(os.path.join(dp, n), path)
                  for dp, dn, fn in os.walk(path) for n in dn + fn)


def test_install_run_with_podman_and_purge(harness, need_fuse, deb):
    for tool in ("podman", "runc", "apt-get"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    m = Machine(harness)
    # What the host had already (the machine is a copy-on-write view of it): a veneer run
    # outside the package, e.g. the README's demo, leaves /var/lib/veneer/procfs and its
    # lock. The purge removes what veneer made and leaves nothing new behind.
    dirs = ("/var/lib/veneer", "/run/veneer-procfs", "/run/veneer", "/usr/libexec/veneer",
            "/usr/share/doc/veneer")
    before = {d: _tree(m.host_path(d)) for d in dirs}
    pkg = harness.path(os.path.basename(deb))
    shutil.copy(deb, pkg)
    m.run(f"apt-get install -y --no-install-recommends {shlex.quote(pkg)}")
    r = m.run("dpkg-query -W -f '${Version} ${Status}' veneer")
    assert r.stdout == f"{meson_version()} install ok installed", r.stdout
    files = [f for f in m.run("dpkg -L veneer").stdout.split() if os.path.isfile(m.host_path(f))]
    for f in ("/usr/bin/veneer-run", "/usr/bin/veneer-procfs", "/usr/bin/veneer-unionfs",
              "/usr/libexec/veneer/veneer-oci-hook", "/lib/systemd/system/veneer-procfs.service",
              "/lib/systemd/system/veneer-cleanup.service",
              "/usr/share/containers/oci/hooks.d/veneer-procfs.json",
              "/usr/share/man/man1/veneer-oci-hook.1.gz",
              "/usr/share/doc/veneer/examples/storage.conf", "/usr/share/veneer/seccomp.json"):
        assert f in files, f
    m.run("man -w veneer-procfs veneer-run veneer-unionfs veneer-oci-hook")
    # The units parse, their commands and man pages exist.
    r = m.run("systemd-analyze verify /lib/systemd/system/veneer-procfs.service "
              "/lib/systemd/system/veneer-cleanup.service", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # The boot-time cleanup's command, by hand.
    (argv, _), = parse_unit(m.host_path("/lib/systemd/system/veneer-cleanup.service"))["ExecStart"]
    m.run(shlex.join(argv))

    svc = Service(harness, m)
    svc.start()
    assert (m.path(MNT), "fuse.veneer-procfs") in m.mounts()
    holder = _holders(m, svc)
    assert len(holder) == 1

    # podman as installed: its default hooks dirs, the package's storage.conf snippet.
    with open(m.host_path("/usr/share/doc/veneer/examples/storage.conf"), "rb") as f:
        mount_program = tomllib.load(f)["storage"]["options"]["overlay"]["mount_program"]
    assert mount_program == "/usr/bin/veneer-unionfs"
    # (podman_util hides the machine's /var/lib/containers; without one it would cover /var/lib,
    # and with it /var/lib/veneer/procfs.)
    m.run("mkdir -p /var/lib/containers")
    pm = Podman(harness, mount_program=mount_program, hooks_dir="default", ns_prefix=m.prefix)
    pm.import_busybox(harness, TOOLS_IMAGE, HOST_TOOLS)
    got = _limits(pm)
    assert got.get("mem") == str(256 * MiB), got
    assert got.get("nproc") == "1" and got.get("top") == "256.0", got
    assert float(got["uptime"]) < 30, got
    r = pm("run", "--rm", *pm.run_opts, TOOLS_IMAGE, "awk", "$2 == \"/\" { print $3 }",
           "/proc/mounts")
    assert r.stdout.strip().startswith("fuse"), r.stdout  # veneer-unionfs, the mount program
    reader = Reader(pm, harness, "reader")
    reader.keeps_reading("its start")

    # The worker dies; systemd's Restart= runs ExecStart again, which attaches to the holder.
    os.kill(svc.main, signal.SIGKILL)
    time.sleep(0.1)  # RestartSec's default
    svc.start()
    reader.keeps_reading("the restart")
    assert _holders(m, svc) == holder

    # ExecStop after a crash (systemd sets $EXIT_CODE) leaves the mount for the restart.
    svc.stop(exit_code="killed")
    assert (m.path(MNT), "fuse.veneer-procfs") in m.mounts()

    # Reload: the holder starts a new worker, which becomes the main process; the old ends.
    old = svc.procs[-1]
    svc.reload()
    msg = svc.notified()
    assert msg.get("READY") == "1" and int(msg["MAINPID"]) != old.pid, msg
    assert old.wait(15) == 0
    svc.main = int(msg["MAINPID"])
    reader.keeps_reading("the reload")
    assert _holders(m, svc) == holder

    # An upgrade (the same package again): postinst gives the running worker a --restart.
    m.run(f"apt-get install -y --reinstall {shlex.quote(pkg)}")
    msg = svc.notified()
    assert msg.get("READY") == "1" and int(msg["MAINPID"]) != svc.main, msg
    svc.main = int(msg["MAINPID"])
    reader.keeps_reading("the upgrade")
    assert _holders(m, svc) == holder

    # Stop: the mount goes; the running container keeps its binds, and new ones start
    # without (the hook leaves them alone); once it is gone, so are holder and worker.
    svc.stop()
    assert not [mp for mp, _ in m.mounts() if mp == m.path(MNT)]
    os.kill(svc.main, signal.SIGTERM)  # systemd's KillMode=process
    reader.keeps_reading("the stop")
    got = _limits(pm)
    with open("/proc/meminfo") as f:
        host_total = int(f.readline().split()[1]) * 1024
    assert got.get("mem") == str(host_total), got
    pm("rm", "-f", "-t", "0", "reader")
    deadline = time.time() + 15
    while _veneer_pids(m) and time.time() < deadline:
        time.sleep(0.1)
    assert not [m.cmdline(p) for p in _veneer_pids(m)]

    # Running again, then purged: prerm unmounts (no systemd here), nothing is left.
    svc.start()
    r = m.run("apt-get purge -y veneer")
    deadline = time.time() + 15
    while _veneer_pids(m) and time.time() < deadline:
        time.sleep(0.1)
    assert not [m.cmdline(p) for p in _veneer_pids(m)]
    assert not _mounted(m), m.mounts()
    assert m.run("dpkg-query -W -f '${Status}' veneer", check=False).stdout in (
        "", "unknown ok not-installed")
    for f in files:
        assert not os.path.lexists(m.host_path(f)), f
    for d in dirs:
        after = _tree(m.host_path(d))
        assert after is None or (before[d] is not None and set(after) <= set(before[d])), \
            (d, before[d], after, r.stdout, r.stderr)
    # man-db's cache of formatted pages (systemd-analyze verify above displayed the units'
    # Documentation= pages) is man-db's: its daily mandb drops pages whose source is gone.
    # Changes below what the host had already (the purge emptied it) are the host's affair.
    hosts = tuple(d.lstrip("/") for d in dirs if before[d] is not None)
    left = [p for p in m.upper_files() if "veneer" in p and not p.startswith("var/cache/man/")
            and not any(p == h or p.startswith(h + "/") for h in hosts)]
    assert not left, left

