# SPDX-License-Identifier: GPL-2.0-or-later
"""-o index=on against the kernel's overlayfs mounted with the same option.

A lower file with several hard links stays one file after copy-up: a write through
one name is read through the others, they keep one st_ino and the link count the
kernel shows, each name that changes is linked in from <workdir>/index, the entry
goes with the last name. Uppers (with their index) written by either side are
mounted by the other; a mount with other lowers, or an index with another upper,
is refused as the kernel refuses it; orphaned entries are swept at mount as the
kernel sweeps them. The random differential test runs with index=on too
(test_unionfs_semantics_random.py).
"""
import os
import subprocess

import pytest

from unionfs_diff import RENAME_EXCHANGE, Diff, read, renameat2, write
from veneer_harness import build_path, mounted_at, sanitizer_env, snapshot

ON = ("index=on",)


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def _layers(l0, l1):
    write(f"{l1}/a", "one\n")
    os.link(f"{l1}/a", f"{l1}/b")
    os.makedirs(f"{l1}/d")
    os.link(f"{l1}/a", f"{l1}/d/c")
    os.symlink("target", f"{l1}/s")
    os.link(f"{l1}/s", f"{l1}/d/s2", follow_symlinks=False)
    write(f"{l0}/solo", "solo\n")
    os.makedirs(f"{l0}/d")


NAMES = ("a", "b", "d/c", "e", "d/c2", "s", "d/s2")


def _view(s):
    """Per name: link count, size, content; and which names share one st_ino."""
    out, inos = {}, {}
    for n in NAMES:
        p = s.p(*n.split("/"))
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            out[n] = None
            continue
        body = os.readlink(p) if os.path.islink(p) else read(p).decode()
        out[n] = (st.st_nlink, st.st_size, body)
        inos.setdefault(st.st_ino, []).append(n)
    return out, sorted(sorted(v) for v in inos.values())


def _entries(s):
    """The index entries on disk (the kernel's '#' temporaries aside)."""
    idx = os.path.join(s.work, "index")
    return sorted(n for n in os.listdir(idx) if not n.startswith("#")) if os.path.isdir(idx) \
        else None


def _count(s):
    e = _entries(s)
    return None if e is None else len(e)


def test_hard_links_stay_one_file(harness):
    d = Diff(harness, 2, _layers, opts=ON)
    d.run(_view)
    # A write through one name is read through every other; nothing else is linked in.
    d.run(lambda s: write(s.p("a"), "one\ntwo\n"))
    assert d.run(_view)[0]["b"][2] == "one\ntwo\n"
    assert d.run(_count) == 1
    d.check()
    # A name not linked in yet shows the entry after a remount too.
    d.remount()
    assert d.run(_view)[0]["d/c"] == (3, 8, "one\ntwo\n")
    d.check()
    # chmod through a name served from the index links that name in, nothing more.
    d.run(lambda s: os.chmod(s.p("d", "c"), 0o600))
    d.run(lambda s: sorted(os.listdir(s.upper)))
    d.check()
    # unlink, rename, link: the count follows as on the kernel.
    d.run(lambda s: os.unlink(s.p("b")))
    d.run(lambda s: os.rename(s.p("d", "c"), s.p("d", "c2")))
    d.run(lambda s: os.link(s.p("a"), s.p("e")))
    d.run(_view)
    d.check()
    d.remount()
    d.run(_view)
    d.check()
    # Removing every name removes the entry.
    for n in ("a", "e"):
        d.run(lambda s, n=n: os.unlink(s.p(n)))
    assert d.run(_count) == 1
    d.run(lambda s: os.unlink(s.p("d", "c2")))
    assert d.run(_count) == 0
    d.check()


def test_renamed_over_and_symlinks(harness):
    """rename over a name of an indexed file, and a hard-linked symlink copied up."""
    d = Diff(harness, 2, _layers, opts=ON)
    d.run(lambda s: os.rename(s.p("solo"), s.p("b")))
    d.run(_view)
    d.run(lambda s: os.lchown(s.p("s"), 7, 7))
    d.run(lambda s: (os.lstat(s.p("d", "s2")).st_uid, os.lstat(s.p("d", "s2")).st_nlink))
    d.run(_count)
    d.check()
    d.remount()
    d.run(_view)
    d.check()


def test_rename_over_another_name_of_the_file(harness):
    """Two names of an indexed file are one inode: renaming one over the other does
    nothing on the kernel (and exchanging them neither), so nothing moves here either."""
    d = Diff(harness, 2, _layers, opts=ON)
    d.run(lambda s: os.rename(s.p("b"), s.p("a")))
    d.run(lambda s: renameat2(s.p("a"), s.p("d", "c"), RENAME_EXCHANGE))
    d.run(_view)
    d.check()
    d.run(lambda s: write(s.p("a"), "one\ntwo\n"))
    d.run(lambda s: os.rename(s.p("d", "c"), s.p("b")))
    d.run(_view)
    d.check()


def test_metadata_only_copy_up_into_the_index(harness):
    """With metacopy=on the entry holds no data until a write: the names not linked in
    read the lower's data, also when looked up afresh, and all see the write after it."""
    d = Diff(harness, 2, _layers, opts=ON + ("metacopy=on",))
    d.run(lambda s: os.chmod(s.p("b"), 0o640))
    d.remount()
    d.run(_view)
    d.check()
    d.run(lambda s: os.rename(s.p("a"), s.p("d", "a2")))
    d.run(lambda s: write(s.p("d", "c"), "new\n"))
    d.remount()
    d.run(_view)
    assert d.run(lambda s: read(s.p("b"))) == b"new\n"
    d.check()


def test_without_index_links_break_as_on_the_kernel(harness):
    """The same write without index=on: the names part, on both sides (so the tests
    above can fail)."""
    d = Diff(harness, 2, _layers)
    d.run(lambda s: write(s.p("a"), "one\ntwo\n"))
    v = d.run(_view)[0]
    assert v["b"][2] == "one\n" and v["a"][0] == 1
    assert d.run(_count) is None
    d.check()


def _swap_mount(harness, s, kind):
    """Mount s's layers and upper (with its own workdir, which holds the index) as kind."""
    mnt = os.path.join(s.base, "xmnt")
    if kind == "kernel":
        return harness.mount_overlay(s.lowers, s.upper, s.work, mnt=mnt, opts=ON), mnt
    return harness.mount_unionfs(s.lowers, s.upper, s.work, mnt=mnt, opts=ON), mnt


def test_upper_with_index_is_read_by_the_other(harness):
    d = Diff(harness, 2, _layers, opts=ON)
    d.run(lambda s: write(s.p("a"), "one\ntwo\n"))
    d.run(lambda s: os.unlink(s.p("d", "c")))
    d.run(lambda s: os.link(s.p("b"), s.p("e")))
    want = d.run(_view)
    d.umount()
    for s, reader in ((d.k, "veneer"), (d.v, "kernel")):
        m, mnt = _swap_mount(harness, s, reader)
        s.mnt, saved = mnt, s.mnt
        try:
            assert _view(s) == want, f"{s.name}'s upper read by {reader}"
            # The reader keeps it one file: a write through a name not linked in yet.
            write(s.p("b"), "three\n")
            assert read(s.p("e")) == read(s.p("a")) == b"three\n"
            for n in ("a", "b", "e"):
                os.unlink(s.p(n))
            assert _count(s) == 0
        finally:
            s.mnt = saved
            assert harness.umount(m) == 0


def _veneer(harness, lower, upper, work, mnt):
    return subprocess.run([build_path("unionfs/veneer-unionfs"), "-o",
                           f"lowerdir={lower},upperdir={upper},workdir={work},index=on", mnt],
                          capture_output=True, text=True, timeout=60, env=sanitizer_env())


def _kernel(lower, upper, work, mnt, index="on"):
    return subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                           f"lowerdir={lower},upperdir={upper},workdir={work},index={index}",
                           mnt], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("first", ["kernel", "veneer"])
def test_upper_is_bound_to_its_lowers(harness, first):
    """Either side binds an upper to its top lower and its index to its upper; a mount
    with index=on and another lower, or the index with another upper, is refused by
    both, naming what is wrong, and leaves the upper as it was; index=off mounts."""
    l1, l2, up, up2, wk = (harness.mkdir(n) for n in ("l1", "l2", "up", "up2", "wk"))
    write(f"{l1}/x", "x\n")
    mnt = harness.mkdir("mnt")
    if first == "kernel":
        m = harness.mount_overlay([l1], up, wk, mnt=mnt, opts=ON)
    else:
        m = harness.mount_unionfs([l1], up, wk, mnt=mnt, opts=ON)
    assert harness.umount(m) == 0
    before = snapshot(up)
    r = _veneer(harness, l2, up, wk, mnt)
    assert r.returncode == 1 and f"upperdir '{up}'" in r.stderr and l2 in r.stderr, r.stderr
    assert "index=off" in r.stderr and not mounted_at(mnt)
    assert _kernel(l2, up, wk, mnt).returncode != 0 and not mounted_at(mnt)
    r = _veneer(harness, l1, up2, wk, mnt)
    assert r.returncode == 1 and f"'{wk}/index'" in r.stderr and up2 in r.stderr, r.stderr
    assert _kernel(l1, up2, wk, mnt).returncode != 0 and not mounted_at(mnt)
    assert snapshot(up) == before
    # The opt-out both give: index=off mounts the other lower.
    m = harness.mount_unionfs([l2], up, wk, mnt=mnt, opts=("index=off",))
    assert harness.umount(m) == 0
    assert _kernel(l2, up, wk, mnt, index="off").returncode == 0
    assert subprocess.run(["umount", mnt]).returncode == 0


def test_orphans_are_swept_at_mount(harness):
    """An entry whose names are all gone (a crash between the last unlink and the entry's
    removal: merged count 0) is removed at the next mount by both; one that still counts
    names stays."""
    d = Diff(harness, 2, _layers, opts=ON)
    d.run(lambda s: write(s.p("a"), "one\ntwo\n"))
    d.run(lambda s: os.lchown(s.p("s"), 7, 7))
    assert d.run(_count) == 2
    d.umount()
    for s in d.sides:
        idx = os.path.join(s.work, "index")
        for e in _entries(s):
            p = os.path.join(idx, e)
            # Drop the upper names; the regular file's entry keeps a merged count > 0.
            for n in ("a", "s"):
                if os.path.lexists(os.path.join(s.upper, n)) and \
                        os.lstat(os.path.join(s.upper, n)).st_ino == os.lstat(p).st_ino:
                    os.unlink(os.path.join(s.upper, n))
                    if n == "s":
                        os.setxattr(p, "trusted.overlay.nlink", b"U-1", follow_symlinks=False)
    d.mount()
    assert d.run(_count) == 1
    d.run(_view)
    d.check()
