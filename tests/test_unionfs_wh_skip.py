# SPDX-License-Identifier: GPL-2.0-or-later
"""The OCI ".wh.NAME" probe is skipped only where a directory is known to hold no ".wh." entries.

veneer remembers per real directory that it holds no ".wh." file (learned from a full listing,
from a layer root read at mount, or because veneer made the directory itself) and then answers
a miss there without probing for ".wh.NAME". These tests make sure a whiteout is never missed:
".wh." files already in the upper at mount (left by a rootless session), and ".wh." files that
veneer itself writes into such a directory when mknod of 0/0 is refused. The mounts use
timeout=0, so every name reaches the daemon's lookup instead of the kernel's dentry cache.
"""
import errno
import os

import pytest

from veneer_harness import snapshot


def _write(path, data):
    with open(path, "w") as f:
        f.write(data)


def _absent(path):
    with pytest.raises(OSError) as e:
        os.lstat(path)
    assert e.value.errno == errno.ENOENT, path


def test_upper_oci_whiteouts_present_at_mount(harness, unionfs_bin, need_fuse):
    h = harness
    lower = h.mkdir("lower")
    for d in ("look", "list"):
        os.makedirs(os.path.join(lower, d))
        for n in ("gone", "kept"):
            _write(os.path.join(lower, d, n), n)
    _write(os.path.join(lower, "topgone"), "t")
    upper = h.mkdir("upper")
    work = h.mkdir("work")
    # What an earlier unprivileged mount leaves: OCI whiteouts in the upper.
    for d in ("look", "list"):
        os.makedirs(os.path.join(upper, d))
        _write(os.path.join(upper, d, ".wh.gone"), "")
    _write(os.path.join(upper, ".wh.topgone"), "")

    v = h.mount_unionfs([lower], upper, work, mnt=h.path("vm"), opts=("timeout=0",))
    m = v.path
    _absent(os.path.join(m, "topgone"))
    # Lookup before any listing, then listing before lookup.
    _absent(os.path.join(m, "look", "gone"))
    assert sorted(os.listdir(os.path.join(m, "look"))) == ["kept"]
    assert sorted(os.listdir(os.path.join(m, "list"))) == ["kept"]
    _absent(os.path.join(m, "list", "gone"))
    assert sorted(os.listdir(m)) == ["list", "look"]
    # A name created over such a whiteout replaces it.
    _write(os.path.join(m, "list", "gone"), "again")
    with open(os.path.join(m, "list", "gone")) as f:
        assert f.read() == "again"
    assert not os.path.exists(os.path.join(upper, "list", ".wh.gone"))


def _layer(h):
    lower = h.mkdir("lower")
    os.makedirs(os.path.join(lower, "d"))
    for rel in ("top", "d/x", "d/y", "d/z"):
        _write(os.path.join(lower, rel), rel)
    return lower


def _mutate_and_check(m):
    """Every step is followed by lookups that must see the whiteout just written."""
    d = os.path.join(m, "d")
    assert sorted(os.listdir(d)) == ["x", "y", "z"]  # a full listing of the lower dir
    _write(os.path.join(d, "new"), "n")  # copies d up: an empty upper directory
    _absent(os.path.join(d, "absent"))
    os.unlink(os.path.join(d, "x"))  # whiteout written into the copied-up directory
    _absent(os.path.join(d, "x"))
    os.rename(os.path.join(d, "y"), os.path.join(d, "y2"))  # whiteout for the old name
    _absent(os.path.join(d, "y"))
    assert sorted(os.listdir(d)) == ["new", "y2", "z"]
    os.unlink(os.path.join(m, "top"))  # whiteout in the root
    _absent(os.path.join(m, "top"))
    os.mkdir(os.path.join(m, "fresh"))  # made by veneer: known empty
    _write(os.path.join(m, "fresh", "f"), "f")
    _absent(os.path.join(m, "fresh", "g"))
    os.unlink(os.path.join(m, "fresh", "f"))
    _absent(os.path.join(m, "fresh", "f"))


def test_whiteouts_written_as_oci_files_are_seen(harness, unionfs_bin, need_fuse, need_overlay):
    h = harness
    lower = _layer(h)
    # An upper on kernel overlay refuses 0/0 devices: veneer writes ".wh." files.
    _, _, upper, _ = h.unionfs_on_overlay_upper(lower, _mutate_and_check, opts=("timeout=0",))
    assert os.path.exists(os.path.join(upper, "d", ".wh.x"))
    assert os.path.exists(os.path.join(upper, ".wh.top"))


def _owner_ops(m):
    sg = os.path.join(m, "sg")
    os.close(os.open(os.path.join(sg, "f"), os.O_CREAT | os.O_WRONLY, 0o4755))
    os.mkdir(os.path.join(sg, "sub"), 0o755)
    os.close(os.open(os.path.join(sg, "sub", "g"), os.O_CREAT | os.O_WRONLY, 0o644))
    os.mkdir(os.path.join(m, "mine"))
    os.chown(os.path.join(m, "mine"), 0, 4343)
    os.chmod(os.path.join(m, "mine"), 0o2775)
    os.close(os.open(os.path.join(m, "mine", "h"), os.O_CREAT | os.O_WRONLY, 0o2755))
    os.symlink("t", os.path.join(m, "mine", "l"))
    os.mknod(os.path.join(m, "mine", "fifo"), 0o644 | 0o010000)
    os.unlink(os.path.join(sg, "old"))  # a whiteout, then a new file over it
    os.close(os.open(os.path.join(sg, "old"), os.O_CREAT | os.O_WRONLY, 0o6755))


def test_root_creates_in_set_group_id_dirs(harness, unionfs_bin, need_fuse, need_overlay):
    """Objects a root caller makes (in place, where veneer skips its owner fix-up, and over
    a whiteout, where it does not) get the owner, group and mode the kernel gives them."""
    h = harness
    lower = h.mkdir("lower")
    os.makedirs(os.path.join(lower, "sg"))
    _write(os.path.join(lower, "sg", "old"), "o")
    os.chown(os.path.join(lower, "sg"), 0, 4242)
    os.chmod(os.path.join(lower, "sg"), 0o2777)
    k = h.mount_overlay([lower], h.mkdir("ku"), h.mkdir("kw"), mnt=h.path("km"))
    v = h.mount_unionfs([lower], h.mkdir("vu"), h.mkdir("vw"), mnt=h.path("vm"))
    old = os.umask(0o022)
    try:
        _owner_ops(k.path)
        _owner_ops(v.path)
    finally:
        os.umask(old)
    assert snapshot(v.path) == snapshot(k.path)
