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
import subprocess
import sys
import tarfile

import pytest

from podman_util import sanitizer_reports
from veneer_harness import REPO, require, sanitizer_env

sys.path.insert(0, os.path.join(REPO, "bench"))
try:
    from podbench import PrivatePodman  # noqa: E402
finally:
    sys.path.pop(0)

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


# What podman and runc add to every container's root.
RUNTIME_FILES = {"/etc/hostname", "/etc/hosts", "/etc/mtab", "/etc/resolv.conf", "/run",
                 "/run/.containerenv"}


class Podman(PrivatePodman):
    """The benchmark's private podman (own storage root, run root, tmp dir, config files,
    HOME, runc state dir, cgroup parents, blob-info cache in a private mount namespace),
    torn down by the harness, with the mount program's sanitizer reports checked."""

    def __init__(self, harness, mount_program):
        base = harness.mkdir("podman")
        self.asan_dir = os.path.join(base, "asan")
        os.makedirs(self.asan_dir)
        super().__init__(base, mount_program,
                         f"veneer-podman-test-{os.getpid()}-{os.path.basename(harness.tmp)}",
                         os.path.join(self.asan_dir, "report"), env=sanitizer_env())
        harness.defer(self.teardown)

    def __call__(self, *args, check=True, timeout=240):
        r = self.run(*args, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def sanitizer_reports(self):
        return sanitizer_reports(self.asan_dir)

    def teardown(self):
        problems = self.stop()
        reports = self.sanitizer_reports()
        self.remove()
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
    podman("build", "--pull=never", "--network", "none", *podman.build_opts, "-t", IMAGE, ctx)

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
