# SPDX-License-Identifier: GPL-2.0-or-later
"""Differential helpers for veneer-unionfs: one scenario, two mounts.

Layers are built once in a prototype directory and copied (cp -a) for the
kernel's overlayfs and for veneer-unionfs, so both start from identical
trees. Each step runs on both mounts and its results must be equal; the
merged trees and the upper directories on disk are compared with snapshot().
"""
import ctypes
import errno
import os
import stat

from veneer_harness import copy_tree, errno_of, snapshot

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

# Written by the kernel for its own bookkeeping (origin file handles differ per copy).
KERNEL_BOOKKEEPING = ("trusted.overlay.origin", "trusted.overlay.impure", "user.overlay.origin",
                      "user.overlay.impure")


def renameat2(old, new, flags):
    if LIBC.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), old)


def upper_snapshot(path):
    """The upper dir on disk: whiteouts and opaque markers included, kernel bookkeeping out."""
    snap = snapshot(path)
    out = {}
    for rel, e in snap.items():
        kind, mode, uid, gid, size, content, xattrs, nlink = e
        xattrs = tuple(x for x in xattrs if x[0] not in KERNEL_BOOKKEEPING)
        if stat.S_ISCHR(kind) and content == (0, 0):
            nlink = None  # the kernel shares one whiteout inode between whiteouts
        out[rel] = (kind, mode, uid, gid, size, content, xattrs, nlink)
    return out


class Side:
    def __init__(self, name, base, lowers, upper, work, mnt):
        self.name = name
        self.base = base
        self.lowers = lowers
        self.upper = upper
        self.work = work
        self.mnt = mnt
        self.mount = None

    def p(self, *parts):
        return os.path.join(self.mnt, *parts)


class Diff:
    """Kernel overlay (k) and veneer-unionfs (v) over copies of the same layers."""

    def __init__(self, harness, nlower, build, upper=True, proto_v=None, opts=(), vopts=()):
        self.h = harness
        proto = harness.mkdir("proto")
        names = [f"l{i}" for i in range(nlower)]
        for n in names:
            os.makedirs(os.path.join(proto, n))
        if build:
            build(*[os.path.join(proto, n) for n in names])
        self.sides = []
        for side in ("k", "v"):
            base = harness.mkdir(side)
            src = proto_v if (side == "v" and proto_v) else proto
            copy_tree(src, base)
            lowers = [os.path.join(base, n) for n in names]
            up = wk = None
            if upper:
                up = harness.mkdir(side, "upper")
                wk = harness.mkdir(side, "work")
            self.sides.append(Side(side, base, lowers, up, wk, os.path.join(base, "mnt")))
        self.opts = opts
        self.vopts = vopts
        self.crossed = 0
        self.mount()

    @property
    def k(self):
        return self.sides[0]

    @property
    def v(self):
        return self.sides[1]

    def mount(self):
        k, v = self.sides
        # Relative layer names keep a long stack within the kernel's one-page option string.
        cwd = os.getcwd()
        os.chdir(k.base)
        try:
            k.mount = self.h.mount_overlay([os.path.basename(x) for x in k.lowers], k.upper,
                                           k.work, mnt=k.mnt, opts=self.opts)
        finally:
            os.chdir(cwd)
        v.mount = self.h.mount_unionfs(v.lowers, v.upper, v.work, mnt=v.mnt,
                                       opts=tuple(self.opts) + tuple(self.vopts))

    def umount(self):
        for s in self.sides:
            rc = self.h.umount(s.mount)
            assert rc == 0, f"{s.name} unmount exit {rc}"

    def remount(self):
        self.umount()
        self.mount()

    def run(self, fn):
        """fn(side) on both; the results must agree. Returns the kernel's."""
        rk = fn(self.k)
        rv = fn(self.v)
        assert rk == rv, f"kernel {rk!r} != veneer {rv!r}"
        return rk

    def check_inodes_across(self):
        """Each side's upper mounted by the other kind (the kernel over veneer's upper,
        veneer over the kernel's): every name shows the st_ino and readdir d_ino its
        writer showed, and d_ino equals st_ino. Leaves both sides mounted again."""
        views = {s.name: inode_view(s.mnt) for s in self.sides}
        for name, view in views.items():
            bad = {p: v for p, v in view.items() if v[0] != v[1]}
            assert not bad, f"{name}: d_ino != st_ino (st_ino, d_ino): {bad}"
        self.umount()
        self.crossed += 1
        for s in self.sides:
            work = self.h.mkdir(s.name, f"xwork{self.crossed}")
            if "index=on" in self.opts:
                work = s.work  # the index belongs to the upper: a fresh one hides its links
            mnt = os.path.join(s.base, "xmnt")
            if s.name == "v":
                m = self.h.mount_overlay(s.lowers, s.upper, work, mnt=mnt, opts=self.opts)
            else:
                m = self.h.mount_unionfs(s.lowers, s.upper, work, mnt=mnt,
                                         opts=tuple(self.opts) + tuple(self.vopts))
            got = inode_view(mnt)
            rc = self.h.umount(m)
            assert rc == 0, f"reader of {s.name}'s upper: unmount exit {rc}"
            diff = {p: (views[s.name].get(p), got.get(p))
                    for p in set(got) | set(views[s.name]) if got.get(p) != views[s.name].get(p)}
            assert not diff, f"{s.name}'s upper read by the other (writer, reader): {diff}"
        self.mount()

    def check(self, upper=True):
        sk, sv = snapshot(self.k.mnt), snapshot(self.v.mnt)
        diff = {p: (sk.get(p), sv.get(p)) for p in set(sk) | set(sv) if sk.get(p) != sv.get(p)}
        assert not diff, f"merged trees differ (kernel, veneer): {diff}"
        if upper and self.k.upper:
            uk, uv = upper_snapshot(self.k.upper), upper_snapshot(self.v.upper)
            diff = {p: (uk.get(p), uv.get(p)) for p in set(uk) | set(uv)
                    if uk.get(p) != uv.get(p)}
            assert not diff, f"upper dirs differ (kernel, veneer): {diff}"
        return sk


def inode_view(root):
    """relpath -> (st_ino, d_ino) of everything below a merged root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        with os.scandir(dirpath) as it:
            d_ino = {e.name: e.inode() for e in it}
        for n in dirnames + filenames:
            out[os.path.relpath(os.path.join(dirpath, n), root)] = \
                (os.lstat(os.path.join(dirpath, n)).st_ino, d_ino[n])
    return out


def write(path, data, mode=None):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def errnos(*calls):
    """[(fn, args...), ...] -> their errnos (0 on success)."""
    return [errno_of(c[0], *c[1:]) for c in calls]


def whiteout(path):
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def as_uid(ids, fn, *args):
    """fn(*args) in a child process running as another user, as the kernel's permission
    checks see it: ids is a uid (its gid the same) or (uid, gid), no supplementary
    groups. ("ok", its result) or ("err", errno); the result must be a literal (bytes,
    int, tuple...)."""
    import ast
    uid, gid = ids if isinstance(ids, tuple) else (ids, ids)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            try:
                out = ("ok", fn(*args))
            except OSError as e:
                out = ("err", e.errno)
            os.write(wfd, repr(out).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return ast.literal_eval(data.decode())


def read_as(uid, path):
    """The content of path as uid reads it, or the errno it fails with. Only the file's
    own permissions (and its directory's search bit) count: the directory is opened
    first, so the test's private temporary directories above it are not in the way."""
    def rd(dfd, name):
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK, dir_fd=dfd)
        try:
            return os.read(fd, 1 << 16)
        finally:
            os.close(fd)
    try:
        dfd = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    except OSError as e:
        return ("err", e.errno)
    try:
        return as_uid(uid, rd, dfd, os.path.basename(path))
    finally:
        os.close(dfd)


def listing(path):
    """Names and d_types of a directory as readdir gives them."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            out.append((e.name, e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False),
                        e.is_symlink()))
    return sorted(out)


def let_others_in(harness):
    """Search permission on the test's directory and its ancestors (pytest makes them
    0700) for the test's duration, so that other users reach the mounts."""
    p = harness.tmp
    while p != "/":
        mode = stat.S_IMODE(os.stat(p).st_mode)
        if mode & 0o011 != 0o011:
            os.chmod(p, mode | 0o011)
            harness.defer(os.chmod, p, mode)
        p = os.path.dirname(p)


ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_GROUP, ACL_MASK, ACL_OTHER = 1, 2, 4, 8, 0x10, 0x20


def acl_xattr(entries):
    """A system.posix_acl_* value from (tag, perm, id) entries (id None for the base ones),
    in the kernel's xattr format: version 2, entries sorted by tag and id."""
    import struct
    out = struct.pack("<I", 2)
    for tag, perm, qid in sorted(entries, key=lambda e: (e[0], e[2] or 0)):
        out += struct.pack("<HHI", tag, perm, 0xffffffff if qid is None else qid)
    return out


__all__ = ["ACL_GROUP", "ACL_GROUP_OBJ", "ACL_MASK", "ACL_OTHER", "ACL_USER", "ACL_USER_OBJ",
           "acl_xattr", "as_uid", "let_others_in", "Diff", "RENAME_EXCHANGE", "RENAME_NOREPLACE",
           "errno", "errnos", "inode_view", "listing", "read", "read_as", "renameat2",
           "upper_snapshot", "whiteout", "write"]
