# SPDX-License-Identifier: GPL-2.0-or-later
"""A private podman for the tests: its own storage root, run root, tmp dir,
config files, runc state dir, cgroup parent, hooks dir and HOME, so that it
touches nothing of the host's podman and nothing of the host's reaches it.
The images it runs are imported from a busybox-static root filesystem built
here (tests/fixtures/busybox-rootfs.sh): no registry is needed.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from veneer_harness import (REPO, lazy_umount, mounts_below, pids_mentioning, remove_cgroup,
                             sanitizer_env)

ULIMITS = ["--ulimit", "nofile=1000:1000", "--ulimit", "nproc=1000:1000"]
BASE_IMAGE = "localhost/veneer-busybox:latest"
# busybox plus Debian's free, uptime and top (procps: they read /proc, busybox's call
# sysinfo(2)) and coreutils' nproc, copied from the host with their libraries.
TOOLS_IMAGE = "localhost/veneer-procps:latest"
HOST_TOOLS = ("/usr/bin/free", "/usr/bin/uptime", "/usr/bin/top", "/usr/bin/nproc")


# podman runs in a mount namespace of its own, held by a `sleep` for the whole test (so that
# pods see each other's propagated mounts), a slave of the host's (so that it sees mounts
# made later, such as a test's veneer-procfs), where its own empty dir hides the host's
# containers/image blob-info cache (this podman has no option to move it).
PRIVATE_NS = r"""
set -e
cache=$1; shift
if [ -d /var/lib/containers/cache ]; then
    mount --bind "$cache" /var/lib/containers/cache
elif [ -d /var/lib/containers ]; then
    mount --bind "$cache" /var/lib/containers
else
    mount -t tmpfs -o size=1m,mode=0755 tmpfs /var/lib
fi
for cmd in "$@"; do sh -c "$cmd"; done
echo ready
exec sleep 1000000
"""


def _pids_mentioning(text):
    """Processes whose command line mentions text (our private podman dir)."""
    return [pid for pid, _ in pids_mentioning(text, skip_zombies=False)]



def sanitizer_reports(asan_dir):
    """The sanitizer reports the mount program daemons wrote into asan_dir, name and text."""
    out = []
    for name in sorted(os.listdir(asan_dir)):
        with open(os.path.join(asan_dir, name), errors="replace") as f:
            out.append(f"{name}:\n{f.read()}")
    return out

class Podman:
    """A podman that touches nothing outside one directory of the test.

    mount_program: overlay.mount_program (default: the kernel's overlay).
    hooks_dir: its only hooks dir (default: an empty one); "default" for podman's own
    (/usr/share/containers/oci/hooks.d ...: only inside a Machine, never on the host).
    ns_prefix: a command prefix that enters another root first (Machine.prefix).
    prepare_ns: shell commands run in podman's namespace before the first podman command.
    containers_conf_extra: lines for containers.conf's [containers] table.
    """

    def __init__(self, harness, mount_program=None, hooks_dir=None, ns_prefix=(),
                 prepare_ns=(), containers_conf_extra=""):
        self.base = harness.mkdir("podman")
        self.root = os.path.join(self.base, "root")
        # podman refuses a run root longer than 50 characters: a short one
        # in /tmp, removed with the rest at teardown.
        self.runroot = tempfile.mkdtemp(prefix="veneer-pm-", dir="/tmp")
        self.tmpdir = os.path.join(self.base, "tmp")
        self.asan_dir = os.path.join(self.base, "asan")
        self.cache = os.path.join(self.base, "image-cache")
        # Its own runc state dir and cgroup parent, removed at teardown.
        self.runc_root = os.path.join(self.base, "runc")
        self.cgroup_parent = f"veneer-podman-test-{os.getpid()}-{os.path.basename(self.runroot)}"
        cfg = os.path.join(self.base, "cfg")
        home = os.path.join(self.base, "home")
        xdg = os.path.join(self.base, "xdg")
        # Only the hooks a test asks for: never the host's hooks.d directories.
        if hooks_dir == "default":
            assert ns_prefix, "podman's own hooks dirs only inside a Machine"
            self.hooks_dir = None
        else:
            self.hooks_dir = hooks_dir or os.path.join(self.base, "hooks.d")
        for d in (self.root, self.runroot, self.tmpdir, self.asan_dir, self.cache,
                  self.runc_root, cfg, home, xdg, self.hooks_dir):
            if d:
                os.makedirs(d, exist_ok=True)
        os.chmod(xdg, 0o700)
        # "runc" names a wrapper that keeps runc's state in our dir: podman's
        # own cleanup (conmon's exit command) calls runc without --runtime-flag.
        runc = shutil.which("runc") or "/usr/sbin/runc"
        wrapper = os.path.join(self.base, "runc-wrapper")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec {runc} --root "{self.runc_root}" "$@"\n')
        os.chmod(wrapper, 0o755)
        with open(os.path.join(cfg, "containers.conf"), "w") as f:
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    'runtime = "runc"\n'
                    f'events_logfile_path = "{self.tmpdir}/events.log"\n')
            if self.hooks_dir:
                f.write(f'hooks_dir = ["{self.hooks_dir}"]\n')
            f.write(f'[engine.runtimes]\nrunc = ["{wrapper}"]\n'
                    '[containers]\nnetns = "none"\n' + containers_conf_extra)
        with open(os.path.join(cfg, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\n'
                    f'graphroot = "{self.root}"\n')
            if mount_program:
                f.write(f'[storage.options.overlay]\nmount_program = "{mount_program}"\n')
        with open(os.path.join(cfg, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        env = sanitizer_env()
        # The mount program inherits podman's environment: send the sanitizer
        # reports of the daemons podman starts to files we can check.
        asan = env.get("ASAN_OPTIONS", "")
        env["ASAN_OPTIONS"] = asan + f":log_path={self.asan_dir}/asan"
        env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "") + f":log_path={self.asan_dir}/ubsan"
        env.update(HOME=home, XDG_RUNTIME_DIR=xdg, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_DATA_HOME=os.path.join(home, ".local/share"),
                   CONTAINERS_CONF=os.path.join(cfg, "containers.conf"),
                   CONTAINERS_STORAGE_CONF=os.path.join(cfg, "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=os.path.join(cfg, "registries.conf"),
                   TMPDIR=self.tmpdir)
        self.env = env
        self.holder = subprocess.Popen(
            list(ns_prefix) + ["unshare", "--mount", "--propagation", "slave", "--",
                               "sh", "-c", PRIVATE_NS, "sh", self.cache, *prepare_ns],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        harness.defer(self.teardown)
        line = self.holder.stdout.readline()
        assert line == b"ready\n", self.holder.stderr.read().decode(errors="replace")
        # The sleep is the holder's own pid (exec); nsenter -r takes its root too.
        self.enter = ["nsenter", "-t", str(self.holder.pid), "-m", "-r", "-w", "--"]
        self.argv = self.enter + [
            "podman", "--root", self.root, "--runroot", self.runroot,
            "--tmpdir", self.tmpdir, "--storage-driver", "overlay", "--runtime", "runc",
            "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        if self.hooks_dir:
            self.argv += ["--hooks-dir", self.hooks_dir]
        if mount_program:
            self.argv += ["--storage-opt", f"overlay.mount_program={mount_program}"]
        self.run_opts = ULIMITS + ["--cgroup-parent", "/" + self.cgroup_parent]

    def __call__(self, *args, check=True, timeout=240, env=None):
        r = subprocess.run(self.argv + list(args), env=env or self.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def sh(self, script, check=True, timeout=60):
        """A shell command in podman's mount namespace (and root)."""
        r = subprocess.run(self.enter + ["sh", "-c", script], capture_output=True, text=True,
                           timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"{script!r} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def import_busybox(self, harness, name=BASE_IMAGE, host_tools=(), deb=None):
        """Import the busybox-static root filesystem as image `name`, with host_tools and
        the files of a .deb (busybox-rootfs.sh); returns the tarball."""
        tag = name.rsplit("/", 1)[-1].replace(":", "-")
        tar = harness.path(f"{tag}.tar")
        if not os.path.exists(tar):
            env = dict(os.environ, HOST_TOOLS=" ".join(host_tools), DEB=deb or "")
            r = subprocess.run([os.path.join(REPO, "tests", "fixtures", "busybox-rootfs.sh"),
                                tar], capture_output=True, text=True, env=env)
            assert r.returncode == 0, r.stderr
        # An image's usual PATH (kube play, unlike podman run, sets none of its own).
        self("import", "--change", "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
             "/sbin:/bin", tar, name)
        return tar

    def _pids(self):
        return sorted(set(_pids_mentioning(self.base) + _pids_mentioning(self.runroot)))

    def sanitizer_reports(self):
        return sanitizer_reports(self.asan_dir)

    def _ns_mounts(self):
        """Mount points below our dirs in podman's namespace."""
        out = []
        try:
            with open(f"/proc/{self.holder.pid}/mountinfo") as f:
                for line in f:
                    mp = line.split()[4].encode().decode("unicode_escape")
                    if mp.startswith((self.base + "/", self.runroot + "/")) or \
                            mp in (self.base, self.runroot):
                        out.append(mp)
        except (FileNotFoundError, ProcessLookupError):
            pass
        return out

    def teardown(self):
        problems = []
        if self.holder.poll() is None:
            for args in (("pod", "rm", "-a", "-f", "-t", "0"), ("rm", "-a", "-f", "-t", "0"),
                         ("rmi", "-a", "-f")):
                try:
                    self(*args, check=False, timeout=120)
                except subprocess.TimeoutExpired:
                    problems.append(f"podman {' '.join(args)} timed out")
            # podman leaves its storage root bind-mounted on itself and may leave a
            # container's merged dir mounted: unmount everything below our dir.
            for mp in sorted(self._ns_mounts(), reverse=True):
                if self.sh(f'umount "{mp}"', check=False).returncode != 0:
                    self.sh(f'umount -l "{mp}"', check=False)
            os.killpg(self.holder.pid, signal.SIGKILL)
        self.holder.wait()
        self.holder.stdout.close()
        self.holder.stderr.close()
        mps = mounts_below(self.base) + mounts_below(self.runroot)
        for mp in sorted(mps, reverse=True):
            if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
                lazy_umount(mp)
        # What is left of our podman (conmon, mount program daemons) exits once
        # unmounted; wait for it so a sanitizer report at exit is written.
        deadline = time.monotonic() + 15
        while self._pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self._pids():
            problems.append(f"process {pid} still running")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = mounts_below(self.base) + mounts_below(self.runroot)
        for ctrl in sorted(os.listdir("/sys/fs/cgroup")):
            try:
                remove_cgroup(os.path.join("/sys/fs/cgroup", ctrl, self.cgroup_parent))
            except (AssertionError, OSError) as e:
                problems.append(f"cgroup: {e}")
        if left:
            problems.append(f"mounts left: {left}")
        reports = self.sanitizer_reports()
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.runroot, ignore_errors=True)
        if reports:
            problems.append("sanitizer report from a mount program daemon:\n" + "\n".join(reports))
        if problems:
            raise AssertionError("; ".join(problems))
