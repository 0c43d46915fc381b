# SPDX-License-Identifier: GPL-2.0-or-later
"""What both FUSE daemons share through common/fuse-util: quiet start-up,
--version, readiness, and a clean exit when unmounted."""
import os
import subprocess
import time

import pytest

from veneer_harness import build_path, mounted_at


def _version():
    with open(os.path.join(os.path.dirname(__file__), "..", "meson.build")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("version:"):
                return line.split("'")[1]
    raise AssertionError("no version in meson.build")


@pytest.mark.parametrize("prog", ["unionfs/veneer-unionfs", "procfs/veneer-procfs",
                                  "launcher/veneer-run"])
def test_version_is_the_meson_version(prog):
    r = subprocess.run([build_path(prog), "--version"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _version() in r.stdout


def test_unionfs_starts_silently_and_exits_zero_on_unmount(harness, need_fuse, unionfs_bin):
    lower = harness.mkdir("lower")
    upper = harness.mkdir("upper")
    work = harness.mkdir("work")
    m = harness.mount_unionfs([lower], upper, work)
    assert mounted_at(m.path)
    assert harness.umount(m) == 0
    # At the default log level a healthy start-up prints nothing at all.
    assert m.daemon.output() == ""


def test_procfs_starts_silently_and_exits_zero_on_unmount(harness, need_fuse, procfs_bin):
    mnt = harness.path("procfs")
    m = harness.mount_fuse([procfs_bin, "-o", "respawn_delay=0"], mnt)
    assert mounted_at(mnt)
    with open(os.path.join(mnt, "proc", "meminfo")) as f:
        assert f.read().startswith("MemTotal:")
    assert harness.umount(m) == 0
    assert m.daemon.output() == ""


def test_unionfs_ends_when_unmounted_while_another_namespace_holds_a_copy(harness, need_fuse,
                                                                         unionfs_bin):
    """A mount namespace made while the union is mounted (an unrelated unshare, container
    or service) holds a copy of the mount, which keeps the superblock alive after the
    umount here. The daemon still ends at once (the copy then fails with ENOTCONN)
    instead of living, with its layers open, for as long as that namespace does."""
    lower = harness.mkdir("lower")
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("data")
    m = harness.mount_unionfs([lower], harness.mkdir("upper"), harness.mkdir("work"))
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "120"])
    harness.defer(lambda: (holder.kill(), holder.wait()))
    for _ in range(200):
        try:
            with open(f"/proc/{holder.pid}/mountinfo") as f:
                if f" {m.path} " in f.read() and \
                        os.readlink(f"/proc/{holder.pid}/ns/mnt") != os.readlink(
                            "/proc/self/ns/mnt"):
                    break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("the holder's namespace never showed the mount")
    subprocess.run(["umount", m.path], check=True)
    assert m.daemon.wait(5) == 0, "the daemon lives on while another namespace holds a copy"
    r = subprocess.run(["nsenter", "-t", str(holder.pid), "-m", "cat", f"{m.path}/f"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not connected" in r.stderr, r
    # Nothing was unmounted on its way out: no complaint about a mount that was not there.
    assert "failed to unmount" not in m.daemon.output()
