# SPDX-License-Identifier: GPL-2.0-or-later
"""Truncating opens, and calls that fail: against the kernel's overlayfs.

open(O_RDONLY|O_TRUNC) truncates and succeeds on the kernel, given write
permission; without it (EACCES) or on a read-only mount (EROFS) it changes
nothing. More generally a call that fails must leave the merged view as it
was: each failing call here runs on both mounts, the errnos must agree, each
merged tree must be what it was before the call, and the uppers must agree
(a copy-up before the failure only where the kernel makes it too).
"""
import errno
import os
import subprocess

import pytest

from unionfs_diff import Diff, read, write
from veneer_harness import snapshot


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def as_user(uid, fn):
    """errno (or 0) of fn() run as uid/gid with no other groups."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            fn()
        except OSError as e:
            code = e.errno
        finally:
            os.write(w, str(code).encode())
            os._exit(0)
    os.close(w)
    out = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    return int(out)


def trunc_open(p, flags):
    """Open with O_TRUNC: what the descriptor then sees."""
    fd = os.open(p, flags | os.O_TRUNC, 0o644)
    try:
        return os.fstat(fd).st_size, os.pread(fd, 16, 0) if flags & 3 != os.O_WRONLY else None
    finally:
        os.close(fd)


def layers(l0, l1):
    write(f"{l1}/low", "lower data")
    write(f"{l1}/low2", "lower two")
    write(f"{l1}/low3", "lower three")
    write(f"{l1}/ro", "not yours", 0o644)
    write(f"{l0}/mid", "top lower")
    os.makedirs(f"{l1}/dir/sub")
    write(f"{l1}/dir/f", "in dir")
    write(f"{l1}/big", "big")


@pytest.mark.parametrize("opts", [(), ("metacopy=on",)], ids=["plain", "metacopy"])
@pytest.mark.parametrize("pt", ["passthrough=on", "passthrough=off"])
def test_rdonly_trunc_open_truncates(harness, pt, opts):
    d = Diff(harness, 2, layers, opts=opts, vopts=(pt,))

    def scenario(s):
        write(s.p("up"), "upper data")
        return [trunc_open(s.p("low"), os.O_RDONLY),                 # lower file
                trunc_open(s.p("up"), os.O_RDONLY),                  # upper file
                trunc_open(s.p("low2"), os.O_RDONLY | os.O_CREAT),   # existing, O_CREAT
                trunc_open(s.p("mid"), os.O_RDONLY | os.O_CREAT),
                trunc_open(s.p("low3"), os.O_RDWR),
                [os.stat(s.p(n)).st_size for n in ("low", "up", "low2", "mid", "low3")],
                read(s.p("ro"))]
    res = d.run(scenario)
    assert res[0] == (0, b"") and res[1] == (0, b"") and res[5] == [0] * 5

    # Without write permission: EACCES and nothing copied up; the data stays.
    def denied(s):
        return [as_user(99, lambda: trunc_open(s.p("ro"), os.O_RDONLY)),
                as_user(99, lambda: trunc_open(s.p("ro"), os.O_RDONLY | os.O_CREAT)),
                os.path.exists(os.path.join(s.upper, "ro")), read(s.p("ro"))]
    assert d.run(denied) == [errno.EACCES, errno.EACCES, False, b"not yours"]
    d.check()
    d.remount()
    d.check()


def test_rdonly_trunc_open_on_a_read_only_mount(harness):
    d = Diff(harness, 2, layers, upper=False)
    res = d.run(lambda s: [errno_of_call(trunc_open, s.p("low"), os.O_RDONLY),
                           errno_of_call(trunc_open, s.p("low"), os.O_RDONLY | os.O_CREAT),
                           read(s.p("low"))])
    assert res == [errno.EROFS, errno.EROFS, b"lower data"]
    d.check()


def errno_of_call(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def test_failed_calls_leave_the_view_as_it_was(harness):
    """Each call fails on the kernel; on both mounts the merged tree after it is the one
    before it, and the uppers agree (the kernel copies up before some failures)."""
    d = Diff(harness, 2, layers)
    for s in d.sides:
        os.chmod(s.p("dir"), 0o755)

    calls = [
        ("setxattr too big", lambda s: os.setxattr(s.p("low"), "user.big", b"x" * 65536)),
        ("truncate past the upper's limit", lambda s: os.truncate(s.p("big"), 1 << 62)),
        ("link over a name", lambda s: os.link(s.p("low"), s.p("low2"))),
        ("rename a lower directory", lambda s: os.rename(s.p("dir"), s.p("dir2"))),
        ("rmdir non-empty", lambda s: os.rmdir(s.p("dir"))),
        ("mkdir over a file", lambda s: os.mkdir(s.p("low"))),
        ("write-open by another user",
         lambda s: raise_errno(as_user(99, lambda: os.close(os.open(s.p("ro"), os.O_WRONLY))))),
        ("truncating open by another user",
         lambda s: raise_errno(as_user(99, lambda: trunc_open(s.p("ro"), os.O_WRONLY)))),
        ("chmod by another user",
         lambda s: raise_errno(as_user(99, lambda: os.chmod(s.p("low"), 0o777)))),
        ("setfacl by another user",
         lambda s: raise_errno(as_user(99, lambda: os.setxattr(
             s.p("low"), "system.posix_acl_access", ACL_U99_R)))),
        ("truncate by another user",
         lambda s: raise_errno(as_user(99, lambda: os.truncate(s.p("ro"), 1)))),
        ("utime by another user",
         lambda s: raise_errno(as_user(99, lambda: os.utime(s.p("ro"), (1, 1))))),
        ("create in a directory of another user",
         lambda s: raise_errno(as_user(99, lambda: write(s.p("dir", "new"), "n")))),
        ("unlink in a directory of another user",
         lambda s: raise_errno(as_user(99, lambda: os.unlink(s.p("dir", "f"))))),
        ("rename into a directory of another user",
         lambda s: raise_errno(as_user(99, lambda: os.rename(s.p("low"), s.p("dir", "x"))))),
        ("removexattr of nothing", lambda s: os.removexattr(s.p("low3"), "user.none")),
        ("bad ACL", lambda s: os.setxattr(s.p("low3"), "system.posix_acl_access", b"\x02\0")),
    ]
    for what, fn in calls:
        def attempt(s):
            before = snapshot(s.mnt)
            e = errno_of_call(fn, s)
            after = snapshot(s.mnt)
            changed = {p: (before.get(p), after.get(p)) for p in set(before) | set(after)
                       if before.get(p) != after.get(p)}
            return e, changed
        e, changed = d.run(attempt)
        assert e != 0, f"{what}: did not fail"
        assert not changed, f"{what} (errno {e}) changed the view: {changed}"
        d.check()


def raise_errno(e):
    if e:
        raise OSError(e, os.strerror(e))


# system.posix_acl_access for user::rw-, user:99:r--, group::r--, mask::r--, other::r--
ACL_U99_R = bytes.fromhex("02000000" "01000600ffffffff" "0200040063000000" "04000400ffffffff"
                          "10000400ffffffff" "20000400ffffffff")



def test_a_full_upper_fails_copy_up_and_changes_nothing(harness):
    """ENOSPC in the middle of a copy-up (the upper is a 1 MiB tmpfs, the lower file 2 MiB):
    the call fails on both mounts, the merged view and the upper stay as they were, and
    nothing is left in the workdir."""
    def build(l0):
        write(f"{l0}/big", b"b" * (2 << 20))
        write(f"{l0}/small", "s")
        os.makedirs(f"{l0}/d")
        write(f"{l0}/d/f", "f")

    d = Diff(harness, 1, build)
    d.umount()
    for s in d.sides:
        t = harness.mkdir(s.name, "full")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", t], check=True)
        harness.defer(subprocess.run, ["umount", "-l", t])
        s.upper, s.work = harness.mkdir(s.name, "full", "u"), harness.mkdir(s.name, "full", "w")
    d.mount()
    calls = [
        ("write open", lambda s: os.close(os.open(s.p("big"), os.O_WRONLY))),
        ("chmod", lambda s: os.chmod(s.p("big"), 0o600)),
        ("truncate", lambda s: os.truncate(s.p("big"), 1)),
        ("link", lambda s: os.link(s.p("big"), s.p("d", "big2"))),
        ("rename", lambda s: os.rename(s.p("big"), s.p("d", "big2"))),
        ("setxattr", lambda s: os.setxattr(s.p("big"), "user.x", b"1")),
    ]
    for what, fn in calls:
        def attempt(s):
            before = snapshot(s.mnt)
            e = errno_of_call(fn, s)
            changed = {p for p, v in snapshot(s.mnt).items() if before.get(p) != v}
            return e, changed, os.listdir(os.path.join(s.work, "work"))
        e, changed, left = d.run(attempt)
        assert e == errno.ENOSPC and not changed and not left, (what, e, changed, left)
        d.check()
    # what needs no data still works: the smaller file, and a truncating open
    d.run(lambda s: (os.chmod(s.p("small"), 0o600), trunc_open(s.p("big"), os.O_WRONLY)))
    d.check()
