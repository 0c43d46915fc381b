# SPDX-License-Identifier: GPL-2.0-or-later
"""Cross-mount: veneer-unionfs and kernel overlayfs read each other's upper.

One side mounts the layers, changes the tree in every way that writes to the
upper (copy-ups, whiteouts, opaque dirs, renames, hard links, xattrs) and
unmounts; the other side mounts the same lowers with that upper and must show
the very tree the writer showed, which must also equal what the kernel shows
after doing the same changes itself.
"""
import os

import pytest

from unionfs_diff import inode_view
from unionfs_layers import make_layers, mutate, write_file
from veneer_harness import copy_tree, snapshot


def _times(root):
    """relpath -> mtime of everything below root (both mounts read one upper)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, root)] = os.lstat(p).st_mtime_ns
    return out


def _diff(a, b):
    return {p: (a.get(p), b.get(p)) for p in set(a) | set(b) if a.get(p) != b.get(p)}


@pytest.fixture
def layers(harness, unionfs_bin, need_fuse, need_overlay):
    return make_layers(harness)


def _reference(h, lowers):
    """The tree the kernel shows after making the changes itself."""
    m = h.mount_overlay(lowers, h.mkdir("ref-upper"), h.mkdir("ref-work"), mnt=h.path("ref"))
    mutate(m.path)
    snap = snapshot(m.path)
    h.umount(m)
    return snap


def _mount(h, kind, lowers, upper, work, mnt):
    if kind == "kernel":
        return h.mount_overlay(lowers, upper, work, mnt=mnt)
    return h.mount_unionfs(lowers, upper, work, mnt=mnt)


@pytest.mark.parametrize("writer,reader", [("veneer", "kernel"), ("kernel", "veneer")])
def test_upper_written_by_one_read_by_the_other(harness, layers, writer, reader):
    h = harness
    ref = _reference(h, layers)
    upper = h.mkdir("upper")
    m = _mount(h, writer, layers, upper, h.mkdir("work1"), h.path("m1"))
    mutate(m.path)
    written = snapshot(m.path)
    written_times = _times(m.path)
    rc = h.umount(m)
    assert rc == 0, f"{writer} exited with {rc}"
    assert not _diff(ref, written), f"{writer} differs from the kernel reference"

    m = _mount(h, reader, layers, upper, h.mkdir("work2"), h.path("m2"))
    read = snapshot(m.path)
    assert not _diff(written, read), f"{reader} shows the {writer} upper differently"
    assert not _diff(written_times, _times(m.path)), f"{reader} shows other mtimes"
    assert written_times["usr/share/doc/f10.txt"] == 10**18
    # The reader can go on from there: a further change lands as usual.
    os.unlink(f"{m.path}/new/sym")
    write_file(f"{m.path}/src/only", "rewritten\n")
    after = snapshot(m.path)
    h.umount(m)
    assert "new/sym" not in after and after["src/only"][4] == 10

    # ... and the writer reads that back.
    m = _mount(h, writer, layers, upper, h.mkdir("work3"), h.path("m3"))
    assert not _diff(after, snapshot(m.path)), f"{writer} shows the {reader} changes differently"


def test_upper_on_disk_format_matches_the_kernel(harness, layers):
    """After the same changes both uppers hold the same names and markers."""
    h = harness
    uppers = {}
    for kind in ("kernel", "veneer"):
        upper = h.mkdir(f"{kind}-upper")
        m = _mount(h, kind, layers, upper, h.mkdir(f"{kind}-work"), h.path(f"{kind}-mnt"))
        mutate(m.path)
        h.umount(m)
        out = {}
        for dirpath, dirnames, filenames in os.walk(upper):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                st = os.lstat(p)
                opaque = None
                try:
                    opaque = os.getxattr(p, "trusted.overlay.opaque", follow_symlinks=False)
                except OSError:
                    pass
                out[os.path.relpath(p, upper)] = (st.st_mode & 0o170000, st.st_rdev, opaque)
        uppers[kind] = out
    assert not _diff(uppers["kernel"], uppers["veneer"])
    assert uppers["veneer"]["usr/share/doc/f06.txt"] == (0o020000, 0, None)  # whiteout 0/0
    assert uppers["veneer"]["src"][2] == b"y"                               # opaque


COPIED_UP = ["usr/share/doc/f02.txt", "etc/secret", "usr/share/doc/f04.txt",
             "usr/share/doc/f05.txt", "data/xattr", "usr/share/doc/f09.txt", "etc/f09-link",
             "usr/share/doc/f10.txt", "etc/f08-moved"]
LOWER_OF = {"etc/f09-link": "usr/share/doc/f09.txt", "etc/f08-moved": "usr/share/doc/f08.txt"}


def _lower_ino(lowers, rel):
    for layer in lowers:
        p = os.path.join(layer, LOWER_OF.get(rel, rel))
        if os.path.lexists(p):
            return os.lstat(p).st_ino
    raise AssertionError(rel)


@pytest.mark.parametrize("writer,reader", [("veneer", "veneer"), ("kernel", "veneer"),
                                           ("veneer", "kernel")])
def test_copied_up_files_keep_the_lower_inode(harness, layers, writer, reader):
    """st_ino of a copied-up file is its origin's, across remount and cross-mount."""
    h = harness
    lowers = layers
    want = {rel: _lower_ino(lowers, rel) for rel in COPIED_UP}
    upper = h.mkdir("upper")

    def mount(kind, n):
        if kind == "kernel":
            return h.mount_overlay(lowers, upper, h.mkdir(f"work{n}"), mnt=h.path(f"m{n}"))
        return h.mount_unionfs(lowers, upper, h.mkdir(f"work{n}"), mnt=h.path(f"m{n}"))
    m = mount(writer, 1)
    mutate(m.path)
    got = {rel: os.lstat(os.path.join(m.path, rel)).st_ino for rel in COPIED_UP}
    h.umount(m)
    assert got == want, f"{writer} while mounted"
    m = mount(reader, 2)
    got = {rel: os.lstat(os.path.join(m.path, rel)).st_ino for rel in COPIED_UP}
    assert got == want, f"{reader} reading the upper {writer} wrote"


def _marks(upper):
    """relpath -> (has an origin, is impure) of everything in an upper: the kernel's
    inode-number bookkeeping (the handles themselves differ per copy of the layers)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(upper):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            names = os.listxattr(p, follow_symlinks=False)
            out[os.path.relpath(p, upper)] = ("trusted.overlay.origin" in names,
                                              "trusted.overlay.impure" in names)
    names = os.listxattr(upper)
    out["."] = ("trusted.overlay.origin" in names, "trusted.overlay.impure" in names)
    return out


def test_upper_inode_bookkeeping_matches_the_kernel(harness, layers):
    """The same changes leave origin and impure marks on the same objects: origins on
    copied-up dirs and on files not hard-linked below, impure on every directory a
    copy-up, a rename or a link from elsewhere put an object with an origin into."""
    h = harness
    marks = {}
    for kind in ("kernel", "veneer"):
        upper = h.mkdir(f"{kind}-upper")
        m = _mount(h, kind, layers, upper, h.mkdir(f"{kind}-work"), h.path(f"{kind}-mnt"))
        mutate(m.path)
        h.umount(m)
        marks[kind] = _marks(upper)
    assert not _diff(marks["kernel"], marks["veneer"])
    assert marks["veneer"]["usr"] == (True, True)                 # a copied-up dir
    assert marks["veneer"]["data/hl1-renamed"] == (False, False)  # hard-linked below
    assert marks["veneer"]["etc"][1]                              # f08 moved in


@pytest.mark.parametrize("writer,reader", [("veneer", "kernel"), ("kernel", "veneer")])
def test_inode_numbers_read_across(harness, layers, writer, reader):
    """st_ino and readdir's d_ino of every name are the writer's when the other side
    mounts the upper (and d_ino agrees with st_ino throughout)."""
    h = harness
    upper = h.mkdir("upper")
    m = _mount(h, writer, layers, upper, h.mkdir("work1"), h.path("m1"))
    mutate(m.path)
    written = inode_view(m.path)
    h.umount(m)
    assert all(st == d for st, d in written.values()), written
    m = _mount(h, reader, layers, upper, h.mkdir("work2"), h.path("m2"))
    assert not _diff(written, inode_view(m.path)), f"{reader} reads other inode numbers"


def _labelled(view, roots):
    """inode_view with each number replaced by the path that has it in one of roots (a lower
    or an upper), so views over different copies of an upper compare."""
    where = {}
    for name, root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = os.path.join(dirpath, n)
                where.setdefault(os.lstat(p).st_ino, f"{name}:{os.path.relpath(p, root)}")
    return {p: (where.get(st, "?"), where.get(d, "?")) for p, (st, d) in view.items()}


def test_upper_without_marks_is_read_and_fixed_as_the_kernel_does(harness, layers):
    """An upper whose directories carry no origin and no impure mark (written by an older
    veneer, or by hand) is fixed as the kernel fixes it (its lookup of a merged directory
    writes the origin and marks the parent) and then listed and stated alike. The
    kernel's first listing of a directory comes before the lookups that fix it; veneer
    fixes a directory when it lists it, so its first walk already shows the result."""
    h = harness
    upper = h.mkdir("upper")
    m = _mount(h, "veneer", layers, upper, h.mkdir("work0"), h.path("m0"))
    mutate(m.path)
    h.umount(m)
    for dirpath, dirnames, filenames in os.walk(upper):
        for p in [dirpath] + [os.path.join(dirpath, n) for n in dirnames]:
            for x in ("trusted.overlay.origin", "trusted.overlay.impure"):
                try:
                    os.removexattr(p, x)
                except OSError:
                    pass
    views, marks = {}, {}
    for kind in ("kernel", "veneer"):
        up = h.mkdir(f"{kind}-upper")
        copy_tree(upper, up)
        m = _mount(h, kind, layers, up, h.mkdir(f"{kind}-work"), h.path(f"{kind}-mnt"))
        roots = [("lower0", layers[0]), ("lower1", layers[1]), ("upper", up)]
        views[kind] = [_labelled(inode_view(m.path), roots) for _ in range(2)]
        h.umount(m)
        marks[kind] = _marks(up)
    assert not _diff(views["kernel"][1], views["veneer"][0]), "first walk"
    assert not _diff(views["kernel"][1], views["veneer"][1]), "second walk"
    assert not _diff(marks["kernel"], marks["veneer"])
    assert views["kernel"][0] != views["kernel"][1]  # the kernel did fix something
