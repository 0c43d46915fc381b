# SPDX-License-Identifier: GPL-2.0-or-later
"""Seeded random operation sequences on kernel overlayfs and veneer-unionfs.

Three lower layers with overlapping names, whiteouts and opaque dirs; the same
few hundred calls (create, write, truncate, unlink, mkdir, rmdir, rename with
flags, link, symlink, chmod, xattrs, listings) run on both mounts, every
result or errno is compared, and so are the merged trees and uppers at the end
and after a remount. VENEER_UNIONFS_SEEDS=N runs more seeds; VENEER_UNIONFS_TRACE=1
prints every step and compares the trees after each one. A second test mixes in
descriptors kept open read-only from before a copy-up, attributes changed through
them and what another user may read; both end with each upper mounted by the other
kind and every st_ino and d_ino compared.
"""
import os
import random
import stat
import time

import pytest

from unionfs_diff import (RENAME_EXCHANGE, RENAME_NOREPLACE, Diff, read_as, renameat2, whiteout,
                          write)


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


NAMES = ["a", "b", "c", "c/in", "e", "e/f", "d1", "d2", "d1/x", "d1/y", "d2/x", "d2/z", "d1/sub",
         "d1/sub/q", "d2/x/no"]


def layers(l0, l1, l2):
    for i, l in enumerate((l0, l1, l2)):
        os.makedirs(f"{l}/d1/sub", exist_ok=True)
        write(f"{l}/d1/f{i}", f"layer {i}")
    write(f"{l2}/a", "a2")
    write(f"{l1}/b", "b1")
    write(f"{l2}/d1/x", "x2")
    write(f"{l1}/d1/sub/q", "q1")
    os.makedirs(f"{l2}/d2")
    write(f"{l2}/d2/x", "d2x")
    write(f"{l2}/d2/z", "d2z")
    whiteout(f"{l0}/b")
    os.makedirs(f"{l1}/c")
    write(f"{l1}/c/in", "c")
    os.setxattr(f"{l2}/a", "user.v", b"1")


def result(fn, *args, **kw):
    try:
        r = fn(*args, **kw)
        return ("ok", r if isinstance(r, (int, bytes, str, list, tuple, type(None))) else None)
    except OSError as e:
        return ("err", e.errno)


def put(path, flags, data):
    fd = os.open(path, flags | os.O_NONBLOCK, 0o644)  # a fifo without reader: ENXIO
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def one_op(rnd, s, seed):
    p = lambda n: s.p(*n.split("/"))  # noqa: E731
    n, m = rnd.choice(NAMES), rnd.choice(NAMES)
    op = rnd.randrange(24)
    if op == 0:
        return result(put, p(n), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                      f"w{rnd.randrange(100)}".encode())
    if op == 1:
        return result(put, p(n), os.O_WRONLY | os.O_APPEND, b"+")
    if op == 2:
        return result(os.truncate, p(n), rnd.randrange(4))
    if op == 3:
        return result(os.unlink, p(n))
    if op == 4:
        return result(os.mkdir, p(n))
    if op == 5:
        return result(os.rmdir, p(n))
    if op == 6:
        return result(os.rename, p(n), p(m))
    if op == 7:
        return result(renameat2, p(n), p(m), RENAME_NOREPLACE)
    if op == 8:
        return result(renameat2, p(n), p(m), RENAME_EXCHANGE)
    if op == 9:
        return result(os.link, p(n), p(m))
    if op == 10:
        return result(os.symlink, n, p(m))
    if op == 11:
        return result(os.chmod, p(n), 0o600 | rnd.randrange(0o100))
    if op == 12:
        return result(os.setxattr, p(n), "user.r", str(rnd.randrange(9)).encode(),
                      follow_symlinks=False)
    if op == 13:
        def ls():
            with os.scandir(p(n)) as it:
                return sorted((e.name, e.is_dir(follow_symlinks=False),
                               e.is_symlink()) for e in it)
        return result(ls)
    if op == 14:
        def rd():
            fd = os.open(p(n), os.O_RDONLY | os.O_NONBLOCK)  # fifos must not block
            try:
                return os.read(fd, 100)
            finally:
                os.close(fd)
        return result(rd)
    if op == 16:
        return result(os.mkfifo, p(n))
    if op == 17:
        return result(os.utime, p(n), (rnd.randrange(10**9), rnd.randrange(10**9)),
                      follow_symlinks=False)
    if op == 18:
        return result(os.removexattr, p(n), "user.v", follow_symlinks=False)
    if op == 20:  # keep a file open across later renames and unlinks
        slot = rnd.randrange(3)
        r = result(os.open, p(n), os.O_RDWR | os.O_NONBLOCK)
        if r[0] == "ok":
            if slot in s.fds:
                os.close(s.fds[slot])
            s.fds[slot] = r[1]
            return ("ok", slot)
        return r
    if op in (21, 22, 23):
        slot = rnd.randrange(3)
        fd = s.fds.get(slot)
        if fd is None:
            return ("nofd", slot)
        if op == 21:
            return (slot,) + result(os.pwrite, fd, b"k" * (1 + rnd.randrange(5)),
                                    rnd.randrange(6))
        if op == 22:
            return (slot,) + result(os.pread, fd, 100, 0)
        st = os.fstat(fd)
        return (slot, "ok", st.st_size, st.st_nlink, stat.S_IMODE(st.st_mode))
    st = result(os.lstat, p(n))
    if st[0] == "ok":
        return ("ok",)
    return st


def lstat_view(s, t0):
    """Types, modes, sizes, links; mtimes from before the test (layers, utime) exactly."""
    out = []
    for n in NAMES:
        try:
            st = os.lstat(s.p(*n.split("/")))
            out.append((n, stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_size,
                        st.st_nlink if not stat.S_ISDIR(st.st_mode) else None,
                        None if stat.S_ISDIR(st.st_mode)
                        else st.st_mtime_ns if st.st_mtime_ns < t0 else "new"))
        except OSError as e:
            out.append((n, e.errno))
    return out


def kept_op(rnd, s, t0):
    """Read-only descriptors kept from before a copy-up (with passthrough the copied-up
    file gets a new kernel inode while they stay on the old one): keep one, change
    attributes through one, or look as another user -- the file by name, and the
    attributes every kept descriptor shows."""
    p = lambda n: s.p(*n.split("/"))  # noqa: E731
    n = rnd.choice(NAMES)
    op, slot = rnd.randrange(4), rnd.randrange(2)
    mode = rnd.choice((0o600, 0o604, 0o640, 0o644, 0o666, 0o700))
    owner = rnd.choice((0, 1000, 65534))
    t = rnd.randrange(10**9) * 10**9
    if op == 0:
        r = result(os.open, p(n), os.O_RDONLY | os.O_NONBLOCK)
        if r[0] != "ok":
            return r
        if slot in s.rofds:
            os.close(s.rofds[slot])
        s.rofds[slot] = r[1]
        return ("ok", slot)
    if op in (1, 2):
        fd = s.rofds.get(slot)
        if fd is None:
            return ("nofd", slot)
        if op == 1:
            return (slot,) + result(os.fchmod, fd, mode)
        if owner == 1000:
            return (slot,) + result(os.utime, fd, ns=(t, t))
        return (slot,) + result(os.fchown, fd, owner, owner)
    out = [read_as(65534, p(n))]
    for k in sorted(s.rofds):
        st = os.fstat(s.rofds[k])
        out.append((k, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                    st.st_nlink, st.st_mtime_ns if st.st_mtime_ns < t0 else "new"))
    return tuple(out)


@pytest.mark.parametrize("seed", range(int(os.environ.get("VENEER_UNIONFS_SEEDS", "12"))))
def test_random_kept_descriptors_match_the_kernel(harness, seed):
    d = Diff(harness, 3, layers)
    for s in d.sides:
        s.fds, s.rofds = {}, {}
    t0 = time.time_ns()
    time.sleep(0.05)
    rnds = {s.name: random.Random(seed + 500000) for s in d.sides}
    for step in range(250):
        kept = [rnds[s.name].random() < 0.35 for s in d.sides][0]
        rk = kept_op(rnds["k"], d.k, t0) if kept else one_op(rnds["k"], d.k, seed)
        rv = kept_op(rnds["v"], d.v, t0) if kept else one_op(rnds["v"], d.v, seed)
        assert rk == rv, f"step {step} ({'kept' if kept else 'op'}): kernel {rk} != veneer {rv}"
        if os.environ.get("VENEER_UNIONFS_TRACE"):
            print(step, kept, rk)
            d.check(upper=False)
        if step % 50 == 49:
            d.run(lambda s: lstat_view(s, t0))
    for s in d.sides:
        for fd in list(s.fds.values()) + list(s.rofds.values()):
            os.close(fd)
    d.check()
    d.check_inodes_across()
    d.check()


@pytest.mark.parametrize("seed", range(int(os.environ.get("VENEER_UNIONFS_SEEDS", "12"))))
def test_random_operations_match_the_kernel(harness, seed):
    d = Diff(harness, 3, layers)
    for s in d.sides:
        s.fds = {}
    t0 = time.time_ns()
    time.sleep(0.05)  # file times come from a coarse clock: writes from now on are >= t0
    view = lambda s: lstat_view(s, t0)  # noqa: E731
    rnds = {s.name: random.Random(seed) for s in d.sides}
    for step in range(250):
        peek = random.Random()
        peek.setstate(rnds["k"].getstate())
        desc = (peek.choice(NAMES), peek.choice(NAMES), peek.randrange(24))
        rk = one_op(rnds["k"], d.k, seed)
        rv = one_op(rnds["v"], d.v, seed)
        assert rk == rv, f"step {step}: kernel {rk} != veneer {rv}"
        if os.environ.get("VENEER_UNIONFS_TRACE"):
            print(step, desc, rk)
            d.check(upper=False)
        if step % 50 == 49:
            d.run(view)
    for s in d.sides:
        for fd in s.fds.values():
            os.close(fd)
    d.check()
    d.remount()
    d.run(view)
    d.check()
    d.check_inodes_across()
