# SPDX-License-Identifier: GPL-2.0-or-later
"""Seeded random operation sequences on kernel overlayfs and veneer-unionfs.

Three lower layers with overlapping names, whiteouts, opaque dirs and access
ACLs; the same few hundred calls (create, write, truncate, O_RDONLY|O_TRUNC
opens, unlink, mkdir, rmdir, rename with flags, link, symlink, chmod, xattrs,
ACLs set through the mount, listings, and access, opens, exec and listings as
other users) run on both mounts, every result or errno is compared, each merged
tree after a failed call must be the one before it, and the merged trees and
uppers are compared at the end and after a remount. VENEER_UNIONFS_SEEDS=N runs
more seeds (from VENEER_UNIONFS_SEED0, default 0); VENEER_UNIONFS_TRACE=1 prints
every step and compares the trees after each one. Read-only descriptors are kept
open from before copy-ups, attributes changed through them and looked at as
another user; at the end each upper is mounted by the other kind and every
st_ino and readdir d_ino compared.
"""
import os
import random
import stat
import time

import pytest

from unionfs_diff import (ACL_GROUP, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ,
                          RENAME_EXCHANGE, RENAME_NOREPLACE, Diff, acl_xattr, as_uid,
                          let_others_in, read_as, renameat2, whiteout, write)
from veneer_harness import snapshot


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin, harness):
    let_others_in(harness)  # the ACL checks run as other users


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
    os.link(f"{l2}/d2/z", f"{l2}/d1/y")  # a hard-linked lower file (index=on keeps it one)
    whiteout(f"{l0}/b")
    os.makedirs(f"{l1}/c")
    write(f"{l1}/c/in", "c")
    os.setxattr(f"{l2}/a", "user.v", b"1")
    acl_layers(l0, l1, l2)


def acl_layers(l0, l1, l2):
    """Access ACLs in the lowers, for the permission checks as other users."""
    def acl(path, *named):
        os.setxattr(path, "system.posix_acl_access", acl_xattr(
            [(ACL_USER_OBJ, 6, None), (ACL_GROUP_OBJ, 4, None), (ACL_MASK, 7, None),
             (ACL_OTHER, 4, None), *named]))
    acl(f"{l2}/a", (ACL_USER, 0, 99))
    acl(f"{l2}/d2/x", (ACL_USER, 6, 99), (ACL_GROUP, 2, 77))
    acl(f"{l1}/d1/sub/q", (ACL_USER, 0, 99), (ACL_GROUP, 6, 77))
    os.chmod(f"{l2}/d2", 0o750)
    os.setxattr(f"{l2}/d2", "system.posix_acl_access", acl_xattr(
        [(ACL_USER_OBJ, 7, None), (ACL_GROUP_OBJ, 5, None), (ACL_USER, 1, 99),
         (ACL_MASK, 5, None), (ACL_OTHER, 0, None)]))


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


# Op kinds beyond the 24 of one_op: fn(rnd, s, path, n, m) -> result, numbered from 24 on.
EXTRA_OPS = []


def extra_op(fn):
    EXTRA_OPS.append(fn)
    return fn


def one_op(rnd, s, seed):
    p = lambda n: s.p(*n.split("/"))  # noqa: E731
    n, m = rnd.choice(NAMES), rnd.choice(NAMES)
    op = rnd.randrange(24 + len(EXTRA_OPS))
    if op >= 24:
        return EXTRA_OPS[op - 24](rnd, s, p, n, m)
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


@extra_op
def op_trunc_rdonly(rnd, s, p, n, m):
    """open(O_RDONLY|O_TRUNC) truncates, given write permission."""
    def run():
        fd = os.open(p(n), os.O_RDONLY | os.O_TRUNC | os.O_NONBLOCK
                     | (os.O_CREAT if rnd.randrange(2) else 0), 0o644)
        try:
            return os.fstat(fd).st_size, os.read(fd, 10)
        finally:
            os.close(fd)
    return result(run)


def random_acl(rnd):
    """A valid access ACL: the base entries, maybe a named user 99 and group 77 (then a mask)."""
    e = [(ACL_USER_OBJ, rnd.randrange(8), None), (ACL_GROUP_OBJ, rnd.randrange(8), None),
         (ACL_OTHER, rnd.randrange(8), None)]
    if rnd.randrange(3):
        e.append((ACL_USER, rnd.randrange(8), 99))
    if rnd.randrange(2):
        e.append((ACL_GROUP, rnd.randrange(8), 77))
    if len(e) > 3 or rnd.randrange(2):
        e.append((ACL_MASK, rnd.randrange(8), None))
    return acl_xattr(e)


@extra_op
def op_setfacl(rnd, s, p, n, m):
    """setfacl through the mount (or its removal, setfacl -b)."""
    if rnd.randrange(4) == 0:
        return result(os.removexattr, p(n), "system.posix_acl_access", follow_symlinks=False)
    return result(os.setxattr, p(n), "system.posix_acl_access", random_acl(rnd),
                  follow_symlinks=False)


# (uid, gid): the named user, a member of the named group, and one in no ACL.
OTHER_USERS = [(99, 99), (98, 77), (65534, 65534)]


def as_user(ids, fn):
    """repr of fn()'s result in a child running as ids, no supplementary groups."""
    return repr(as_uid(ids, fn))


def spawn(path):
    """execve of path (its content is no program: ENOEXEC once permitted)."""
    pid = os.posix_spawn(path, [path], {})
    return os.waitpid(pid, 0)[1]


@extra_op
def op_as_other_user(rnd, s, p, n, m):
    """Permission checks as another uid: access(2), read and write opens, exec, listing."""
    ids = rnd.choice(OTHER_USERS)
    what = rnd.randrange(5)

    def run():
        if what == 0:
            return [os.access(p(n), k) for k in (os.R_OK, os.W_OK, os.X_OK)]
        if what == 1:
            fd = os.open(p(n), os.O_RDONLY | os.O_NONBLOCK)
            try:
                return os.read(fd, 10)
            finally:
                os.close(fd)
        if what == 2:
            os.close(os.open(p(n), os.O_WRONLY | os.O_NONBLOCK))
            return None
        if what == 3:
            return spawn(p(n))
        return sorted(os.listdir(p(n)))
    return (ids, what, as_user(ids, lambda: result(run)))


@extra_op
def op_keep_readonly(rnd, s, p, n, m):
    """Keep a read-only descriptor (one of two slots): later calls copy its file up, and
    with passthrough the name then gets a new kernel inode while it stays on the old."""
    slot = rnd.randrange(2)
    r = result(os.open, p(n), os.O_RDONLY | os.O_NONBLOCK)
    if r[0] != "ok":
        return r
    if slot in s.rofds:
        os.close(s.rofds[slot])
    s.rofds[slot] = r[1]
    return ("ok", slot)


@extra_op
def op_kept_change(rnd, s, p, n, m):
    """chmod, chown or utimes through a kept read-only descriptor."""
    slot, what = rnd.randrange(2), rnd.randrange(3)
    mode = rnd.choice((0o600, 0o604, 0o640, 0o644, 0o666, 0o700))
    owner = rnd.choice((0, 99, 65534))
    t = rnd.randrange(10**9) * 10**9
    fd = s.rofds.get(slot)
    if fd is None:
        return ("nofd", slot)
    if what == 0:
        return (slot,) + result(os.fchmod, fd, mode)
    if what == 1:
        return (slot,) + result(os.fchown, fd, owner, owner)
    return (slot,) + result(os.utime, fd, ns=(t, t))


@extra_op
def op_kept_look(rnd, s, p, n, m):
    """What uid 65534 reads of n, and what every kept descriptor shows."""
    out = [read_as(65534, p(n))]
    for k in sorted(s.rofds):
        st = os.fstat(s.rofds[k])
        out.append((k, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_size,
                    st.st_nlink, st.st_mtime_ns if st.st_mtime_ns < s.t0 else "new"))
    return tuple(out)


def failed(res):
    """The call reported an error (at any depth of the result tuple)."""
    return isinstance(res, tuple) and ("err" in res[:2])


def failed_call_unchanged(d, before, res, step):
    """After a call that failed, each merged tree is what it was before the call."""
    if not failed(res):
        return
    for s in d.sides:
        after = snapshot(s.mnt)
        diff = {q: (before[s.name].get(q), after.get(q))
                for q in set(before[s.name]) | set(after)
                if before[s.name].get(q) != after.get(q)}
        assert not diff, f"step {step}: failed call {res} changed {s.name}'s tree: {diff}"


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


SEED0 = int(os.environ.get("VENEER_UNIONFS_SEED0", "0"))


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + int(os.environ.get("VENEER_UNIONFS_SEEDS",
                                                                         "12"))))
def test_random_operations_match_the_kernel(harness, seed):
    run_random(harness, seed)


ALL_OPTIONS = ("redirect_dir=on", "metacopy=on", "xino=on", "index=on")


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + int(os.environ.get(
    "VENEER_UNIONFS_ALL_OPTIONS_SEEDS", "4"))))
def test_random_operations_match_the_kernel_with_all_options(harness, seed):
    """The kernel's options beyond its defaults, all at once on both sides: renamed lower
    directories get redirects, chmod/chown copy metadata only, st_ino carries the xino
    bits (one filesystem here: the kernel and veneer then keep the real numbers), the
    lower hard link stays one file (index)."""
    run_random(harness, seed + 3000, ALL_OPTIONS)


@pytest.mark.parametrize("seed", range(SEED0, SEED0 + int(os.environ.get(
    "VENEER_UNIONFS_INDEX_SEEDS", "4"))))
def test_random_operations_match_the_kernel_with_index(harness, seed):
    """index=on alone: the lower hard link d2/z = d1/y stays one file through copy-up,
    unlink and rename, its link count kept as the kernel keeps it."""
    run_random(harness, seed + 4000, ("index=on",))


def run_random(harness, seed, opts=()):
    """The random test of one seed, both mounts with the mount options opts."""
    d = Diff(harness, 3, layers, opts=opts)
    t0 = time.time_ns()
    for s in d.sides:
        s.fds, s.rofds, s.t0 = {}, {}, t0
    time.sleep(0.05)  # file times come from a coarse clock: writes from now on are >= t0
    view = lambda s: lstat_view(s, t0)  # noqa: E731
    rnds = {s.name: random.Random(seed) for s in d.sides}
    for step in range(250):
        peek = random.Random()
        peek.setstate(rnds["k"].getstate())
        desc = (peek.choice(NAMES), peek.choice(NAMES), peek.randrange(24 + len(EXTRA_OPS)))
        before = {s.name: snapshot(s.mnt) for s in d.sides}
        rk = one_op(rnds["k"], d.k, seed)
        rv = one_op(rnds["v"], d.v, seed)
        assert rk == rv, f"step {step}: kernel {rk} != veneer {rv}"
        failed_call_unchanged(d, before, rk, step)
        if os.environ.get("VENEER_UNIONFS_TRACE"):
            print(step, desc, rk)
            d.check(upper=False)
        if step % 50 == 49:
            d.run(view)
    for s in d.sides:
        for fd in list(s.fds.values()) + list(s.rofds.values()):
            os.close(fd)
    d.check()
    d.remount()
    d.run(view)
    d.check()
    d.check_inodes_across()
