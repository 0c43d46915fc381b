# SPDX-License-Identifier: GPL-2.0-or-later
"""-o redirect_dir=on|follow|nofollow|off against the kernel's overlayfs.

With redirect_dir=on a directory from a lower layer moves without EXDEV: its
upper gets trusted.overlay.redirect (its old name within its directory, else the
absolute path of its lowers), compared byte for byte with what the kernel writes.
Uppers written by either side are read by the other; follow, nofollow and off
read redirects as the kernel does; the random test runs with redirect_dir=on
(VENEER_UNIONFS_REDIRECT_SEEDS=N runs more seeds).
"""
import errno
import os

import pytest

from unionfs_diff import RENAME_EXCHANGE, Diff, errnos, read, renameat2, write
from veneer_harness import snapshot

ON = ("redirect_dir=on",)


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def _layers(l0, l1):
    for l, tag in ((l0, "top"), (l1, "bottom")):
        os.makedirs(f"{l}/d/sub/deep")
        write(f"{l}/d/{tag}", tag)
        write(f"{l}/d/sub/deep/{tag}", tag)
    os.makedirs(f"{l1}/e/inner")
    write(f"{l1}/e/inner/x", "x")
    os.makedirs(f"{l1}/f")
    write(f"{l1}/f/y", "y")
    os.makedirs(f"{l1}/g")
    os.makedirs(f"{l0}/h")
    write(f"{l0}/h/z", "z")


def listing(p):
    return sorted(os.listdir(p))


def _moves(s):
    p = s.p
    return errnos(
        (os.rename, p("d"), p("d2")),                       # merged dir, same parent
        (os.rename, p("d2", "sub"), p("e", "sub")),         # across parents: absolute
        (os.rename, p("e"), p("e2")),                       # a parent of a redirected dir
        (os.rename, p("e2", "sub", "deep"), p("deep")),     # inside a moved tree
        (os.rename, p("f"), p("g")),                        # over an empty lower dir
        (renameat2, p("h"), p("e2", "inner"), RENAME_EXCHANGE),
        (os.rename, p("d2"), p("d")),                       # back to its name
        (os.rmdir, p("g")),                                 # ENOTEMPTY: f's y is there
        (os.mkdir, p("new")),
        (os.rename, p("new"), p("d", "new")),               # pure upper into merged: opaque
    ) + [listing(p()), listing(p("d")), listing(p("e2")), listing(p("e2", "sub")),
         listing(p("deep")), listing(p("g")), listing(p("e2", "inner")), listing(p("h")),
         read(p("g", "y")), read(p("deep", "bottom"))]


def _changes(s):
    """Names changed inside moved directories: copy-up, whiteouts, new files."""
    p = s.p
    return errnos(
        (os.unlink, p("deep", "top")),
        (os.unlink, p("g", "y")),
        (os.rmdir, p("g")),
        (write, p("e2", "sub", "new"), "n"),
        (os.chmod, p("d", "bottom"), 0o600),
        (os.rename, p("e2", "sub"), p("sub3")),
        (os.mkdir, p("g")),
    ) + [listing(p()), listing(p("sub3")), listing(p("deep"))]


def test_lower_directories_move_as_on_the_kernel(harness):
    d = Diff(harness, 2, _layers, opts=ON)
    assert d.run(_moves)[:7] == [0] * 7
    d.check()
    d.run(_changes)
    d.check()
    d.remount()
    d.check()
    d.check_inodes_across()
    d.check()


@pytest.mark.parametrize("writer", ["kernel", "veneer"])
def test_redirected_upper_read_by_the_other(harness, writer):
    """An upper with redirects, made by one side, mounted by the other with
    redirect_dir=on, follow, off (followed: redirect_always_follow) and nofollow."""
    h = harness
    lower0, lower1 = h.mkdir("l0"), h.mkdir("l1")
    _layers(lower0, lower1)
    up = h.mkdir("upper")
    if writer == "kernel":
        m = h.mount_overlay([lower0, lower1], up, h.mkdir("w"), mnt=h.path("m"), opts=ON)
    else:
        m = h.mount_unionfs([lower0, lower1], up, h.mkdir("w"), mnt=h.path("m"), opts=ON)
    d = type("S", (), {"p": staticmethod(lambda *a: os.path.join(m.path, *a))})
    _moves(d)
    _changes(d)
    want = snapshot(m.path)
    assert h.umount(m) == 0
    assert os.getxattr(os.path.join(up, "e2"), "trusted.overlay.redirect") == b"e"  # same parent: relative
    for n, mode in enumerate(["on", "follow", "off", "nofollow"]):
        opts = (f"redirect_dir={mode}",)
        got = {}
        for kind in ("kernel", "veneer"):
            wk, mnt = h.mkdir(f"w{kind}{n}"), h.path(f"m{kind}{n}")
            if kind == "kernel":
                r = h.mount_overlay([lower0, lower1], up, wk, mnt=mnt, opts=opts)
            else:
                r = h.mount_unionfs([lower0, lower1], up, wk, mnt=mnt, opts=opts)
            if mode == "nofollow":
                # The kernel refuses to look up a redirected directory: EPERM.
                got[kind] = [errnos((os.stat, os.path.join(r.path, x)))[0]
                             for x in ("d", "e2", "sub3", "deep", "h", "g")]
            else:
                got[kind] = snapshot(r.path)
            assert h.umount(r) == 0
        assert got["kernel"] == got["veneer"], f"redirect_dir={mode}"
        if mode != "nofollow":
            assert got["veneer"] == want, f"redirect_dir={mode}"
        else:
            assert errno.EPERM in got["veneer"]


@pytest.mark.parametrize("mode", ["follow", "off", "nofollow"])
def test_without_on_a_lower_directory_move_is_exdev(harness, mode):
    d = Diff(harness, 2, _layers, opts=(f"redirect_dir={mode}",))
    assert d.run(lambda s: errnos((os.rename, s.p("d"), s.p("d2"))))[0] == errno.EXDEV
    d.check()


def test_bad_redirect_values_are_refused(harness, unionfs_bin):
    import subprocess
    lower, up, wk, mnt = (harness.mkdir(x) for x in ("l", "u", "w", "m"))
    for opts, msg in (("redirect_dir=yes", "redirect_dir='yes'"),
                      ("metacopy=on,redirect_dir=follow", "conflicting options")):
        p = subprocess.run([unionfs_bin, "-o", f"lowerdir={lower},upperdir={up},workdir={wk},"
                            f"{opts}", mnt], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and msg in p.stderr, (opts, p.returncode, p.stderr)
        assert not os.path.ismount(mnt)


SEEDS = int(os.environ.get("VENEER_UNIONFS_REDIRECT_SEEDS", "4"))
SEED0 = int(os.environ.get("VENEER_UNIONFS_SEED0", "0"))


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + SEEDS))
def test_random_operations_match_the_kernel_with_redirect_dir(harness, seed):
    import test_unionfs_semantics_random as sr
    sr.let_others_in(harness)
    sr.run_random(harness, seed + 2000, ON)
