# SPDX-License-Identifier: GPL-2.0-or-later
"""podman with veneer-unionfs as its overlay.mount_program.

A private podman (own storage root, run root, tmp dir, config files, HOME)
imports a busybox image built locally from Debian's busybox-static, runs a
multi-step `podman build` whose steps create, delete, rename and chmod files
in each other's layers (and COPY from the context), and checks the tree
`podman run` shows. With a mount
program, containers/storage computes each layer diff by walking veneer's
merged view against the parent's, and stores the layers with OCI `.wh.NAME` and
`.wh..wh..opq` whiteouts, which veneer then reads as lower layers.
"""
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time

import pytest

from veneer_harness import (REPO, lazy_umount, mounts_below, pids_mentioning, remove_cgroup,
                             require, sanitizer_env)

ULIMITS = ["--ulimit", "nofile=1000:1000", "--ulimit", "nproc=1000:1000"]
BASE_IMAGE = "localhost/veneer-busybox:latest"
IMAGE = "localhost/veneer-podman-test:1"

CONTAINERFILE = """\
FROM localhost/veneer-busybox:latest
RUN mkdir -p /data/sub /data/gone /data/dir && echo one > /data/a && echo two > /data/b && \
    echo x > /data/gone/f && echo keep > /data/sub/k && echo d > /data/dir/f && \
    chmod 600 /data/b && chmod 700 /data/dir
RUN rm -rf /data/gone && mv /data/a /data/a2 && chmod 751 /data/sub && \
    echo more >> /data/sub/k && rm /bin/vi && mv /data/dir /data/dir2
RUN mkdir /data/gone && echo new > /data/gone/g && ln -s a2 /data/link && \
    ln /data/b /data/bhard && chmod 640 /data/a2
COPY copied /data/sub/copied
"""

# One line per path below /data: name|type|mode|nlink (files only)|content or link target.
LIST_SCRIPT = r"""
find /data | sort | while read -r p; do
  t=$(stat -c %F "$p"); m=$(stat -c %a "$p")
  case "$t" in
    "regular file") echo "$p|f|$m|$(stat -c %h "$p")|$(tr '\n' '~' < "$p")" ;;
    "symbolic link") echo "$p|l|$m||$(readlink "$p")" ;;
    directory) echo "$p|d|$m||" ;;
    *) echo "$p|?$t|$m||" ;;
  esac
done
for p in /bin/vi /bin/sh /data/a /data/dir /data/gone/f; do
  if [ -e "$p" ] || [ -L "$p" ]; then echo "present $p"; else echo "absent $p"; fi
done
awk '$2 == "/" { print "rootfs " $3 }' /proc/mounts
find / -xdev | sort | sed 's/^/tree /'
"""

EXPECTED = [
    "/data|d|755||",
    "/data/a2|f|640|1|one~",
    # The layer diff of step 3 holds bhard alone (b itself did not change), so
    # the image has two separate files: containers/storage does the same with
    # fuse-overlayfs.
    "/data/b|f|600|1|two~",
    "/data/bhard|f|600|1|two~",
    "/data/dir2|d|700||",
    "/data/dir2/f|f|644|1|d~",
    "/data/gone|d|755||",
    "/data/gone/g|f|644|1|new~",
    "/data/link|l|777||a2",
    "/data/sub|d|751||",
    "/data/sub/copied|d|755||",  # COPY makes the destination dir 0755
    "/data/sub/copied/run.sh|f|755|1|#!/bin/sh~",
    "/data/sub/k|f|644|1|keep~more~",
    "absent /bin/vi",
    "present /bin/sh",
    "absent /data/a",
    "absent /data/dir",
    "absent /data/gone/f",
]


# podman runs in a private mount namespace where its own empty dir hides the
# host's containers/image blob-info cache (this podman has no option to move it).
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
exec "$@"
"""

# What podman and runc add to every container's root.
RUNTIME_FILES = {"/etc/hostname", "/etc/hosts", "/etc/mtab", "/etc/resolv.conf", "/run",
                 "/run/.containerenv"}


def _pids_mentioning(text):
    """Processes whose command line mentions text (our private podman dir)."""
    return [pid for pid, _ in pids_mentioning(text, skip_zombies=False)]


class Podman:
    """A podman that touches nothing outside one directory of the test."""

    def __init__(self, harness, mount_program):
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
        for d in (self.root, self.runroot, self.tmpdir, self.asan_dir, self.cache,
                  self.runc_root, cfg, home, xdg):
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
                    f'events_logfile_path = "{self.tmpdir}/events.log"\n'
                    f'[engine.runtimes]\nrunc = ["{wrapper}"]\n'
                    '[containers]\nnetns = "none"\n')
        with open(os.path.join(cfg, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\n'
                    f'graphroot = "{self.root}"\n'
                    f'[storage.options.overlay]\nmount_program = "{mount_program}"\n')
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
        self.argv = ["unshare", "--mount", "--propagation", "private", "--",
                     "sh", "-c", PRIVATE_NS, "sh", self.cache,
                     "podman", "--root", self.root, "--runroot", self.runroot,
                     "--tmpdir", self.tmpdir, "--storage-driver", "overlay",
                     "--storage-opt", f"overlay.mount_program={mount_program}",
                     "--runtime", "runc",
                     "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        self.run_opts = ULIMITS + ["--cgroup-parent", "/" + self.cgroup_parent]
        harness.defer(self.teardown)

    def __call__(self, *args, check=True, timeout=240):
        r = subprocess.run(self.argv + list(args), env=self.env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def _pids(self):
        return sorted(set(_pids_mentioning(self.base) + _pids_mentioning(self.runroot)))

    def sanitizer_reports(self):
        out = []
        for name in sorted(os.listdir(self.asan_dir)):
            with open(os.path.join(self.asan_dir, name), errors="replace") as f:
                out.append(f"{name}:\n{f.read()}")
        return out

    def teardown(self):
        problems = []
        for args in (("rm", "-a", "-f", "-t", "0"), ("rmi", "-a", "-f")):
            try:
                self(*args, check=False, timeout=120)
            except subprocess.TimeoutExpired:
                problems.append(f"podman {' '.join(args)} timed out")
        # podman leaves its storage root bind-mounted on itself and may leave a
        # container's merged dir mounted: unmount everything below our dir.
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


@pytest.fixture
def podman(harness, unionfs_bin, need_fuse):
    require(shutil.which("podman") is not None, "podman is not installed")
    require(shutil.which("runc") is not None, "runc is not installed")
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    pm = Podman(harness, unionfs_bin)
    tar = harness.path("busybox.tar")
    subprocess.run([os.path.join(REPO, "tests", "fixtures", "busybox-rootfs.sh"), tar],
                   check=True, capture_output=True)
    pm("import", tar, BASE_IMAGE)
    pm.rootfs_tar = tar
    return pm


def test_podman_build_and_run(podman, harness):
    ctx = harness.mkdir("context")
    with open(os.path.join(ctx, "Containerfile"), "w") as f:
        f.write(CONTAINERFILE)
    os.makedirs(os.path.join(ctx, "copied"))
    os.chmod(os.path.join(ctx, "copied"), 0o750)
    with open(os.path.join(ctx, "copied", "run.sh"), "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(os.path.join(ctx, "copied", "run.sh"), 0o755)
    podman("build", "--pull=never", "--network", "none", *podman.run_opts, "-t", IMAGE, ctx)

    r = podman("run", "--rm", "--network", "none", *podman.run_opts, IMAGE, "sh", "-c", LIST_SCRIPT)
    lines = r.stdout.splitlines()
    rootfs = [ln for ln in lines if ln.startswith("rootfs ")]
    assert rootfs and rootfs[0].startswith("rootfs fuse"), \
        f"the container's / is not a FUSE mount: {rootfs} (mount_program unused?)"
    assert [ln for ln in lines if not ln.startswith(("rootfs ", "tree "))] == EXPECTED
    # The whole root: the busybox image less /bin/vi, plus /data and what the
    # runtime puts in every container.
    tree = {ln[5:] for ln in lines if ln.startswith("tree ")}
    with tarfile.open(podman.rootfs_tar) as t:
        image = {"/" + os.path.normpath(n) if os.path.normpath(n) != "." else "/"
                 for n in t.getnames()}
    data = {ln.split("|")[0] for ln in EXPECTED if ln.startswith("/data")}
    want = (image - {"/bin/vi"}) | data
    assert not want - tree, f"missing from the container: {sorted(want - tree)}"
    assert tree - want <= RUNTIME_FILES, f"unexpected in the container: {sorted(tree - want)}"

    # The running container sees the image through veneer too: a write in it
    # copies up, and leaves the image untouched for the next container.
    r = podman("run", "--rm", "--network", "none", *podman.run_opts, IMAGE, "sh", "-c",
               "echo changed > /data/b && rm /data/sub/k && cat /data/bhard /data/b && "
               "ls /data/sub")
    assert r.stdout.split() == ["two", "changed", "copied"]
    r = podman("run", "--rm", "--network", "none", *podman.run_opts, IMAGE, "cat", "/data/b",
               "/data/sub/k")
    assert r.stdout == "two\nkeep\nmore\n"
