# SPDX-License-Identifier: GPL-2.0-or-later
"""-o xino=auto|on|off against the kernel's overlayfs, with layers on three filesystems.

The upper is on the test's base filesystem, one lower on a tmpfs, one on a loop-mounted
ext4 image. With xino every name of the merged tree shows one st_dev, the top bits of
st_ino hold the index of the layer's filesystem (the kernel's numbers, compared value by
value; numbers of upper objects are the upper's own inode on both sides), d_ino equals
st_ino, copied-up files keep their lower number, the numbers stay across remounts and
across mounting one side's upper under the other, and du/find -inum count hard links as
on the kernel although the layers' own inode numbers collide. A lower whose inode
numbers use the top bits (a kernel overlay with xino) gets numbers from the overflow
range, as the kernel gives its directories.
"""
import os
import shutil
import subprocess

import pytest

from unionfs_diff import write


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def _mount(h, argv, what):
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, f"{what}: {r.stderr}"
    h.defer(lambda p: subprocess.run(["umount", p], check=True), argv[-1])


def _layers(h):
    """Returns (tmpfs lower, ext4 lower); the ext4 lower's first files share inode
    numbers with the tmpfs lower's."""
    t = h.mkdir("tmpfs")
    _mount(h, ["mount", "-t", "tmpfs", "-o", "size=16m", "xino-tmpfs", t], "tmpfs")
    img = h.path("lower.ext4")
    with open(img, "wb") as f:
        f.truncate(32 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True, capture_output=True)
    e = h.mkdir("ext4")
    _mount(h, ["mount", "-o", "loop", img, e], "ext4 image")
    os.makedirs(f"{t}/d/sub")
    os.makedirs(f"{e}/d/deep")
    for i in range(20):
        write(f"{t}/d/t{i}", "t" * (4096 * (i + 1)))
        write(f"{e}/e{i}", "e" * (4096 * (i + 1)))
    write(f"{t}/f", "f")
    os.link(f"{t}/f", f"{t}/f-link")
    write(f"{t}/copied", "c")
    write(f"{e}/d/low", "l")
    tinos = {os.lstat(f"{t}/d/t{i}").st_ino for i in range(20)}
    einos = {os.lstat(f"{e}/e{i}").st_ino for i in range(20)}
    assert tinos & einos, "the layers' own inode numbers were meant to collide"
    return t, e


def _change(m):
    os.chmod(f"{m}/copied", 0o600)          # copy-up: keeps the lower's number
    os.chmod(f"{m}/d/low", 0o600)           # into a merged dir, from the ext4 lower
    os.mkdir(f"{m}/newdir")
    write(f"{m}/newdir/n", "n")
    os.unlink(f"{m}/d/t3")


def _tree(m, upper):
    """path -> st_ino ("U" when it is the upper object's own), d_ino; and the st_devs."""
    ino, dino, devs = {}, {}, set()
    for root, dirs, files in os.walk(m):
        for n in [None, *dirs, *files]:
            p = os.path.join(root, n) if n else root
            rel = os.path.relpath(p, m)
            st = os.lstat(p)
            devs.add(st.st_dev)
            try:
                own = os.lstat(os.path.join(upper, rel)).st_ino
            except FileNotFoundError:
                own = None
            ino[rel] = "U" if st.st_ino == own else st.st_ino
        for e in os.scandir(root):
            rel = os.path.relpath(e.path, m)
            dino[rel] = e.inode()
    return ino, dino, devs


def _both(h, t, e, opt):
    """The same change on the kernel and on veneer, each with its own upper."""
    out = {}
    for side in ("kernel", "veneer"):
        u, w = h.mkdir(side, "u"), h.mkdir(side, "w")
        mnt = h.mkdir(side, "m")
        mount = h.mount_overlay if side == "kernel" else h.mount_unionfs
        m = mount([t, e], u, w, mnt=mnt, opts=(opt,))
        _change(m.path)
        out[side] = (m, u, w)
    return out


@pytest.mark.parametrize("opt", ["xino=on", "xino=auto"])
def test_inode_numbers_as_the_kernel(harness, opt):
    h = harness
    t, e = _layers(h)
    sides = _both(h, t, e, opt)
    trees = {}
    for side, (m, u, _) in sides.items():
        ino, dino, devs = _tree(m.path, u)
        assert len(devs) == 1, f"{side}: more than one st_dev in the mount"
        for rel, v in ino.items():
            if rel != ".":
                assert dino[rel] == (os.lstat(os.path.join(m.path, rel)).st_ino), rel
        trees[side] = ino
    assert trees["veneer"] == trees["kernel"]
    k = trees["kernel"]
    # Three filesystems: two top bits hold the index; ext4 lower is fsid 2, tmpfs 1.
    assert k["d/sub"] >> 62 == 1 and k["d/deep"] >> 62 == 2 and k["e0"] >> 62 == 2
    assert k["copied"] >> 62 == 1 and k["d/low"] >> 62 == 2
    assert k["newdir"] == "U" and k["newdir/n"] == "U"
    nums = [v for r, v in k.items() if v != "U" and r != "f-link"]
    assert len(nums) == len(set(nums)), "an inode number shows twice"
    assert k["f"] == k["f-link"]

    # Stable across remounts, and across mounting one side's upper under the other.
    for side, (m, u, w) in sides.items():
        h.umount(m)
    for side, (m, u, w) in sides.items():
        for other in ("kernel", "veneer"):
            mount = h.mount_overlay if other == "kernel" else h.mount_unionfs
            m2 = mount([t, e], u, w, mnt=h.mkdir(side, "again-" + other), opts=(opt,))
            assert _tree(m2.path, u)[0] == k, f"{side}'s upper under {other}"
            h.umount(m2)


def _du_find(m, ino):
    du = subprocess.run(["du", "-s", "-B1", m], capture_output=True, text=True, check=True)
    f = subprocess.run(["find", m, "-inum", str(ino)], capture_output=True, text=True,
                       check=True)
    return int(du.stdout.split()[0]), sorted(os.path.relpath(p, m) for p in f.stdout.split())


def test_du_and_find_inum_as_the_kernel(harness):
    h = harness
    t, e = _layers(h)
    sides = _both(h, t, e, "xino=on")
    res = {}
    for side, (m, u, _) in sides.items():
        res[side] = _du_find(m.path, os.lstat(f"{m.path}/f").st_ino)
        # A file of the ext4 lower with the number a tmpfs file has there: one name only.
        n = os.lstat(f"{e}/e5").st_ino
        clash = [p for p in os.listdir(f"{t}/d") if os.lstat(f"{t}/d/{p}").st_ino == n]
        found = _du_find(m.path, os.lstat(f"{m.path}/e5").st_ino)[1]
        assert found == ["e5"], (side, clash, found)
    assert res["veneer"] == res["kernel"]
    assert res["kernel"][1] == ["f", "f-link"]
    # Every file counted once: the sum of the layers' data blocks, hard link once.
    assert res["kernel"][0] > sum(4096 * (i + 1) for i in range(20)) * 2 - 4096 * 4


def test_default_is_auto_and_off_keeps_the_layers_numbers(harness):
    h = harness
    t, e = _layers(h)
    u, w = h.mkdir("u"), h.mkdir("w")
    m = h.mount_unionfs([t, e], u, w)
    assert os.lstat(f"{m.path}/e0").st_ino >> 62 == 2
    h.umount(m)
    m = h.mount_unionfs([t, e], u, w, opts=("xino=off",))
    assert os.lstat(f"{m.path}/e0").st_ino == os.lstat(f"{e}/e0").st_ino
    assert os.lstat(f"{m.path}/d/sub").st_ino == os.lstat(f"{t}/d/sub").st_ino
    h.umount(m)


def test_one_filesystem_keeps_the_real_numbers(harness):
    h = harness
    l1 = h.mkdir("l1")
    write(f"{l1}/a", "a")
    u, w = h.mkdir("u"), h.mkdir("w")
    for side in ("kernel", "veneer"):
        mount = h.mount_overlay if side == "kernel" else h.mount_unionfs
        m = mount([l1], u, w, mnt=h.mkdir(side + "-m"), opts=("xino=on",))
        assert os.lstat(f"{m.path}/a").st_ino == os.lstat(f"{l1}/a").st_ino, side
        h.umount(m)


def test_overflowing_inode_numbers_get_the_overflow_range(harness):
    """A kernel overlay with xino as the lower: its numbers use bit 63, which the
    index of a second filesystem needs. Directories get numbers with the overflow bit
    (62) on the kernel too; on veneer every such inode does (FUSE has one st_dev)."""
    h = harness
    t = h.mkdir("tmpfs")
    _mount(h, ["mount", "-t", "tmpfs", "-o", "size=16m", "xino-tmpfs", t], "tmpfs")
    os.makedirs(f"{t}/d/sub")
    write(f"{t}/d/a", "a")
    write(f"{t}/b", "b")
    os.link(f"{t}/b", f"{t}/b-link")
    k1 = h.mount_overlay([t], h.mkdir("k1u"), h.mkdir("k1w"), mnt=h.mkdir("k1"),
                         opts=("xino=on",))
    assert os.lstat(f"{k1.path}/d").st_ino >> 63 == 1
    res = {}
    for side in ("kernel", "veneer"):
        mount = h.mount_overlay if side == "kernel" else h.mount_unionfs
        m = mount([k1.path], h.mkdir(side, "u"), h.mkdir(side, "w"), mnt=h.mkdir(side, "m"),
                  opts=("xino=on",))
        st = {p: os.lstat(f"{m.path}/{p}") for p in ("d", "d/sub", "d/a", "b", "b-link")}
        res[side] = st
        for p in ("d", "d/sub"):
            assert st[p].st_ino >> 62 == 1, (side, p, hex(st[p].st_ino))
            assert st[p].st_dev == os.lstat(m.path).st_dev
    v = res["veneer"]
    assert len({s.st_dev for s in v.values()}) == 1
    for p in ("d/a", "b"):
        assert v[p].st_ino >> 62 == 1, (p, hex(v[p].st_ino))
    assert v["b"].st_ino == v["b-link"].st_ino
    assert len({v[p].st_ino for p in ("d", "d/sub", "d/a", "b")}) == 4


@pytest.mark.parametrize("layout", ["lower-only", "ext4-lower"])
def test_other_layouts_as_the_kernel(harness, layout):
    """Without an upper (fsid 0 is kept free: 3 bits for two lower filesystems), and with
    every layer on ext4 (32-bit inode handles: the index goes above bit 32)."""
    h = harness
    t, e = _layers(h)
    trees = {}
    for side in ("kernel", "veneer"):
        mount = h.mount_overlay if side == "kernel" else h.mount_unionfs
        if layout == "lower-only":
            m = mount([t, e], mnt=h.mkdir(side, "m"), opts=("xino=auto",))
            u = h.mkdir(side, "none")
        else:
            u = h.mkdir(side, "u")
            m = mount([e], u, h.mkdir(side, "w"), mnt=h.mkdir(side, "m"), opts=("xino=auto",))
        trees[side] = _tree(m.path, u)
        h.umount(m)
    assert trees["veneer"] == trees["kernel"]
    k = trees["kernel"][0]
    if layout == "lower-only":
        assert k["d/sub"] >> 61 == 2 and k["e0"] >> 61 == 4   # fsids 1 and 2, 3 bits
    else:
        assert k["e0"] >> 33 == 1 and k["e0"] & 0xffffffff == os.lstat(f"{e}/e0").st_ino
