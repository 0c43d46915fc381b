# SPDX-License-Identifier: GPL-2.0-or-later
"""What both FUSE daemons share through common/fuse-util: quiet start-up,
--version, readiness, and a clean exit when unmounted."""
import os
import subprocess

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
