# SPDX-License-Identifier: GPL-2.0-or-later
"""Whiteouts written in the OCI form where the upper refuses mknod of 0/0.

The upper and workdir sit on a kernel overlay mount, which refuses a char
device 0/0 (EPERM) but stores ordinary `.wh.NAME` files: veneer's probe must
see that and fall back to `.wh.` whiteouts, which it (and containers/storage)
reads back. The merged view is compared with kernel overlayfs doing the same
changes on a normal upper, before and after a remount.
"""
import os
import stat

from veneer_harness import snapshot


def _layer(h):
    lower = h.mkdir("lower")
    os.makedirs(os.path.join(lower, "dir", "sub"))
    for rel, data in (("gone", "base"), ("keep", "keep"), ("moved", "m"),
                      ("dir/inner", "x"), ("dir/sub/deep", "d")):
        with open(os.path.join(lower, rel), "w") as f:
            f.write(data)
    return lower


def _mutate(mnt):
    os.unlink(os.path.join(mnt, "gone"))
    for dirpath, dirnames, filenames in os.walk(os.path.join(mnt, "dir"), topdown=False):
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
        for name in dirnames:
            os.rmdir(os.path.join(dirpath, name))
    os.rmdir(os.path.join(mnt, "dir"))
    os.mkdir(os.path.join(mnt, "dir"))
    with open(os.path.join(mnt, "dir", "new"), "w") as f:
        f.write("new")
    os.rename(os.path.join(mnt, "moved"), os.path.join(mnt, "renamed"))


def test_whiteouts_fall_back_to_oci_files(harness, unionfs_bin, need_fuse, need_overlay):
    h = harness
    lower = _layer(h)

    # The kernel overlayfs oracle on a plain upper, veneer with its upper and workdir
    # inside a kernel overlay mount: the same merged tree.
    expected, v, upper, work = h.unionfs_on_overlay_upper(lower, _mutate)

    # On disk: OCI whiteout files and an opaque directory, no char devices.
    names = sorted(os.listdir(upper))
    assert ".wh.gone" in names and ".wh.moved" in names, names
    for dirpath, dirnames, filenames in os.walk(upper):
        for name in filenames + dirnames:
            st = os.lstat(os.path.join(dirpath, name))
            assert not stat.S_ISCHR(st.st_mode), os.path.join(dirpath, name)
    assert os.getxattr(os.path.join(upper, "dir"), "trusted.overlay.opaque") == b"y"

    # veneer reads its own fallback format back after a remount.
    assert h.umount(v) == 0
    v2 = h.mount_unionfs([lower], upper, work, mnt=h.path("vm2"))
    assert snapshot(v2.path) == expected
    # Creating over an OCI whiteout removes it.
    with open(os.path.join(v2.path, "gone"), "w") as f:
        f.write("again")
    assert ".wh.gone" not in os.listdir(upper)
    with open(os.path.join(v2.path, "gone")) as f:
        assert f.read() == "again"
