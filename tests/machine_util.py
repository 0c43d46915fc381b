# SPDX-License-Identifier: GPL-2.0-or-later
"""A copy-on-write view of this machine to install packages into.

The host's root filesystem under a kernel overlay (the upper on a tmpfs), in a private
mount namespace that a `sleep` holds: apt and dpkg see the machine's own dpkg database,
packages and files, and everything they change lands in the upper directory, which a test
inspects and which is gone with the namespace. The host's /proc, /sys, /dev and /tmp are
there (the test's files are in /tmp), /run is a fresh tmpfs. So a test can `apt install` a
.deb, start what it installed, purge it and check that nothing is left, while other tests
of this machine (and its podman's global hooks dirs) never see any of it.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

SETUP = r"""
set -e
B=$1; R=$B/root
mount -t tmpfs -o size=3g,mode=0755 veneer-machine "$B/rw"
mkdir "$B/rw/upper" "$B/rw/work"
mount -t overlay -o "lowerdir=/,upperdir=$B/rw/upper,workdir=$B/rw/work" veneer-machine "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
mount --rbind /tmp "$R/tmp"
# Shared inside this namespace: the namespaces made from it (a test's podman, as a slave)
# see its later mounts and unmounts, as podman on the host sees the host's.
mount --make-rshared "$R"
echo ready
exec sleep 1000000
"""


class Machine:
    def __init__(self, harness):
        # Not below /tmp: that is bound into the view.
        self.base = tempfile.mkdtemp(prefix="veneer-machine-", dir="/var/tmp")
        self.root = os.path.join(self.base, "root")
        self.upper = os.path.join(self.base, "rw", "upper")
        os.makedirs(os.path.join(self.base, "rw"))
        os.makedirs(self.root)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", SETUP, "sh",
             self.base], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        harness.defer(self.teardown)
        line = self.holder.stdout.readline()
        assert line == b"ready\n", self.holder.stderr.read().decode(errors="replace")
        self.mntns = os.stat(f"/proc/{self.holder.pid}/ns/mnt").st_ino
        # Commands run in the view: its mount namespace, chrooted into it.
        self.prefix = ["nsenter", "-t", str(self.holder.pid), "-m", "--", "chroot", self.root]
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8", "HOME": "/root"}

    def run(self, script, check=True, timeout=300, env=None):
        r = subprocess.run(self.prefix + ["sh", "-c", script], capture_output=True, text=True,
                           timeout=timeout, env=dict(self.env, **(env or {})),
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"in the machine: {script!r} failed ({r.returncode}):\n"
                                 f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        return r

    def popen(self, argv, env=None, **kw):
        return subprocess.Popen(self.prefix + list(argv), env=dict(self.env, **(env or {})),
                                **kw)

    def path(self, p):
        """A path of the view, as its mount namespace shows it (mountinfo's form)."""
        return os.path.join(self.root, p.lstrip("/"))

    def host_path(self, p):
        """The same, reachable from the host: through the holder's /proc/PID/root."""
        return f"/proc/{self.holder.pid}/root" + self.path(p)

    def pids(self):
        """Processes in the view's mount namespace, but its holder."""
        out = []
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) == self.holder.pid:
                continue
            try:
                if os.stat(f"/proc/{e}/ns/mnt").st_ino == self.mntns:
                    out.append(int(e))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        return out

    def cmdline(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (FileNotFoundError, ProcessLookupError):
            return ""

    def mounts(self):
        """(mount point, fs type) in the view's namespace."""
        out = []
        with open(f"/proc/{self.holder.pid}/mountinfo") as f:
            for line in f:
                a = line.split()
                out.append((a[4].encode().decode("unicode_escape"), a[a.index("-") + 1]))
        return out

    def upper_files(self):
        """What the view changed: paths below the upper directory."""
        upper = f"/proc/{self.holder.pid}/root" + self.upper
        out = []
        for d, dirs, files in os.walk(upper):
            for n in dirs + files:
                out.append(os.path.relpath(os.path.join(d, n), upper))
        return sorted(out)

    def teardown(self):
        left = [(p, self.cmdline(p)) for p in self.pids()]
        for p, _ in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.holder.poll() is None:
            os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait()
        self.holder.stdout.close()
        self.holder.stderr.close()
        deadline = time.time() + 10
        while self.pids() and time.time() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.base, ignore_errors=True)
        assert not left, f"processes left in the machine: {left}"
