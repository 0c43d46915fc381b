# SPDX-License-Identifier: GPL-2.0-or-later
"""POSIX ACLs through veneer-unionfs, against the kernel's overlayfs.

Access ACLs in every layer and on copied-up files are enforced for other users
(named users and groups granted and denied, masks, exec and directory search),
default ACLs are inherited by new objects as on the upper's filesystem (under
several umasks, in place and over whiteouts), chmod updates the mask, setfacl
through the mount works, and the same holds on a tmpfs upper, with a lower on a
filesystem without ACLs and in a user namespace mount. Every check runs as the
other users on both mounts and the errnos must agree; the kernel's answers are
also asserted, so that a check that denies or grants nothing cannot pass.
"""
import errno
import json
import os
import stat
import subprocess
import sys

import pytest

from unionfs_diff import Diff, read, write
from veneer_harness import REPO

USER = (99, 99)        # a named user in the ACLs below
GROUPIE = (98, 77)     # in the named group 77
OTHER = (65534, 65534)  # in none of the ACLs


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin, harness):
    # Other users must reach the mounts: search permission on the test's directory and
    # its ancestors (pytest makes them 0700) for the test's duration.
    p = harness.tmp
    while p != "/":
        mode = stat.S_IMODE(os.stat(p).st_mode)
        if mode & 0o011 != 0o011:
            os.chmod(p, mode | 0o011)
            harness.defer(os.chmod, p, mode)
        p = os.path.dirname(p)


def setfacl(*args):
    subprocess.run(["setfacl", *args], check=True, capture_output=True)


def getfacl(path):
    r = subprocess.run(["getfacl", "-n", "--absolute-names", "--omit-header", path],
                       check=True, capture_output=True, text=True)
    return r.stdout


def as_user(ids, fn, umask=None, groups=()):
    """fn() in a child with the given (uid, gid), no other groups unless given; its
    result or the errno it failed with."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(list(groups))
            os.setresgid(ids[1], ids[1], ids[1])
            os.setresuid(ids[0], ids[0], ids[0])
            if umask is not None:
                os.umask(umask)
            try:
                res = fn()
            except OSError as e:
                res = ("errno", e.errno)
            os.write(w, repr(res).encode())
        finally:
            os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


def errno_of(fn, *args):
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def listdir(p):
    return sorted(os.listdir(p))


def exec_status(p):
    """The exit status of running p, or the errno execve failed with."""
    try:
        return subprocess.run([p], capture_output=True).returncode
    except OSError as e:
        return -e.errno


def write_open(p):
    os.close(os.open(p, os.O_WRONLY | os.O_APPEND))


def probe(s, names):
    """What each user may do with each name: read, write, search, list, exec."""
    def run():
        out = []
        for n in names:
            p = s.p(*n.split("/"))
            kind = n.split("/")[-1][0]
            if kind == "d":
                out.append((n, errno_of(listdir, p), os.access(p, os.X_OK),
                            os.access(p, os.W_OK)))
            elif kind == "x":
                out.append((n, exec_status(p), os.access(p, os.X_OK)))
            else:
                out.append((n, errno_of(read, p), errno_of(write_open, p),
                            os.access(p, os.R_OK), os.access(p, os.W_OK)))
        return out
    return {str(u): as_user(u, run) for u in (USER, GROUPIE, OTHER)}


ACL_NAMES = ["f_deny", "f_grant", "f_mask", "f_group", "f_top", "f_mid", "d_search/f_inner",
             "d_search", "d_merged", "x_exec", "d_search/sub/f_deep"]


def acl_layers(l0, l1, l2):
    # the two files: a named user denied, and granted more than the group class
    write(f"{l2}/f_deny", "secret", 0o644)
    setfacl("-m", "u:99:---", f"{l2}/f_deny")
    write(f"{l2}/f_grant", "granted", 0o600)
    setfacl("-m", "u:99:r", f"{l2}/f_grant")
    # the mask limits a named user's rw to r
    write(f"{l1}/f_mask", "masked", 0o640)
    setfacl("-m", "u:99:rw,m::r", f"{l1}/f_mask")
    # a named group, granted rw
    write(f"{l1}/f_group", "group", 0o600)
    setfacl("-m", "g:77:rw", f"{l1}/f_group")
    # the top lower and the middle one shadow ACL-less copies below
    write(f"{l0}/f_top", "top", 0o644)
    setfacl("-m", "u:99:---,g:77:---", f"{l0}/f_top")
    write(f"{l2}/f_top", "below", 0o644)
    write(f"{l1}/f_mid", "mid", 0o600)
    setfacl("-m", "u:99:rw,g:77:r", f"{l1}/f_mid")
    write(f"{l2}/f_mid", "below", 0o644)
    # search only for the named user: no listing, but the way through
    os.makedirs(f"{l2}/d_search/sub")
    os.chmod(f"{l2}/d_search", 0o700)
    setfacl("-m", "u:99:x,g:77:r", f"{l2}/d_search")
    write(f"{l2}/d_search/f_inner", "inner", 0o644)
    write(f"{l2}/d_search/sub/f_deep", "deep", 0o644)
    # a merged directory: the top one's ACL counts
    os.makedirs(f"{l0}/d_merged")
    setfacl("-m", "u:99:---", f"{l0}/d_merged")
    os.makedirs(f"{l2}/d_merged")
    write(f"{l2}/d_merged/low", "low")
    # exec for the named user only
    write(f"{l2}/x_exec", "#!/bin/sh\nexit 3\n", 0o700)
    setfacl("-m", "u:99:rx", f"{l2}/x_exec")


def test_access_acls_in_every_layer_and_after_copy_up(harness):
    d = Diff(harness, 3, acl_layers)
    # The reproducer, with setpriv.
    for s in d.sides:
        r = subprocess.run(["setpriv", "--reuid", "99", "--regid", "99", "--clear-groups",
                            "cat", s.p("f_deny")], capture_output=True, text=True)
        assert r.returncode != 0 and "secret" not in r.stdout, (s.name, r.stdout)
    before = d.run(lambda s: probe(s, ACL_NAMES))
    # Kernel's answers, so the comparison cannot pass with ACLs ignored on both sides.
    k99 = before[str(USER)]
    assert "('f_deny', 13, 13, False, False)" in k99
    assert "('f_grant', 0, 13, True, False)" in k99
    assert "('f_mask', 0, 13, True, False)" in k99
    assert "('d_search', 13, True, False)" in k99
    assert "('x_exec', 3, True)" in k99
    assert "('d_search/f_inner', 0, 13, True, False)" in k99
    assert "('f_group', 0, 0, True, True)" in before[str(GROUPIE)]
    assert "('x_exec', -13, False)" in before[str(OTHER)]
    d.check()

    # Copy-up by a metadata change (utime), by a write open, and of the directories
    # by a new file: the ACLs come along, and are what the kernel has in its upper.
    def copy_up(s):
        for n in ("f_deny", "f_grant", "f_top", "x_exec"):
            os.utime(s.p(n), (1, 1))
        for n in ("f_mask", "f_mid", "d_search/f_inner"):
            write_open(s.p(*n.split("/")))
        write(s.p("d_search", "new"), "n")
        write(s.p("d_merged", "new"), "n")
    d.run(copy_up)
    after = d.run(lambda s: probe(s, ACL_NAMES))
    assert after == before
    d.check()
    for n in ("f_deny", "f_grant", "f_mask", "f_top", "d_search", "d_merged", "x_exec"):
        assert getfacl(os.path.join(d.v.upper, n)) == getfacl(os.path.join(d.k.upper, n))
    assert "user:99:---" in getfacl(os.path.join(d.v.upper, "f_deny"))
    assert "user:99:r-x" in getfacl(os.path.join(d.v.upper, "x_exec"))
    d.remount()
    assert d.run(lambda s: probe(s, ACL_NAMES)) == before


def test_setfacl_and_chmod_through_the_mount(harness):
    def build(l0):
        write(f"{l0}/low", "low", 0o644)
        write(f"{l0}/low2", "low2", 0o640)
        os.makedirs(f"{l0}/dir")
        os.chmod(f"{l0}/dir", 0o755)
        write(f"{l0}/sg", "sg", 0o2775)
        os.chown(f"{l0}/sg", 99, 0)

    d = Diff(harness, 1, build)
    names = ["low", "low2", "up", "dir"]

    def step1(s):
        write(s.p("up"), "up", 0o644)
        setfacl("-m", "u:99:---,g:77:rw", s.p("low"))   # copy-up by setfacl
        setfacl("-m", "u:99:rw", s.p("up"))
        setfacl("-m", "u:99:---", s.p("dir"))
        return [getfacl(s.p(n)) for n in names] + [oct(os.stat(s.p(n)).st_mode) for n in names]
    d.run(step1)
    p1 = d.run(lambda s: probe(s, names))
    assert "('up', 0, 0, True, True)" in p1[str(USER)]
    assert "('low', 13, 13, False, False)" in p1[str(USER)]
    # chmod after setfacl: the mask follows the group bits.
    def step2(s):
        os.chmod(s.p("up"), 0o640)
        os.chmod(s.p("low"), 0o640)
        return [getfacl(s.p(n)) for n in ("up", "low")]
    acls = d.run(step2)
    assert "mask::r--" in acls[0] and "mask::r--" in acls[1]
    p2 = d.run(lambda s: probe(s, names))
    assert "('up', 0, 13, True, False)" in p2[str(USER)]
    assert "('low', 0, 13, True, False)" in p2[str(GROUPIE)]
    # Removing ACLs (setfacl -b), a default ACL on a lower dir, and a lower file's ACL
    # set to the equivalent of its mode (stored as the mode only).
    def step3(s):
        setfacl("-b", s.p("up"))
        setfacl("-d", "-m", "u:99:rwx", s.p("dir"))
        setfacl("-m", "u::rw,g::r,o::-", s.p("low2"))
        setfacl("-k", s.p("dir"))
        setfacl("-d", "-m", "g:77:rx", s.p("dir"))
        return [getfacl(s.p(n)) for n in names]
    d.run(step3)
    assert d.run(lambda s: probe(s, names)) != p2
    # Setting an access ACL drops set-group-ID when the caller is not in the file's group.
    def sgid(s):
        r = subprocess.run(["setpriv", "--reuid", "99", "--regid", "99", "--clear-groups",
                            "setfacl", "-m", "u:98:r", s.p("sg")], capture_output=True,
                           text=True)
        return r.returncode, oct(os.stat(s.p("sg")).st_mode)
    assert d.run(sgid) == (0, oct(stat.S_IFREG | 0o775))
    d.check()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o000])
def test_default_acls_are_inherited(harness, umask):
    def build(l0, l1):
        os.makedirs(f"{l1}/dd")
        setfacl("-m", "u:99:rwx", f"{l1}/dd")
        setfacl("-d", "-m", "u:99:rwx,g:77:rx,g::rwx,o::r", f"{l1}/dd")
        write(f"{l1}/dd/gone", "g")
        os.makedirs(f"{l1}/dd/gonedir")
        os.makedirs(f"{l1}/plain")
        write(f"{l1}/plain/gone", "g")
        os.makedirs(f"{l0}/masked")
        setfacl("-d", "-m", "u:99:rw,m::r", f"{l0}/masked")

    d = Diff(harness, 2, build)

    def make(s, where, who):
        def run():
            base = s.p(where)
            os.close(os.open(os.path.join(base, f"f_{who}"), os.O_CREAT | os.O_WRONLY, 0o666))
            os.close(os.open(os.path.join(base, f"g_{who}"), os.O_CREAT | os.O_RDONLY, 0o640))
            os.mkdir(os.path.join(base, f"d_{who}"), 0o777)
            os.mkdir(os.path.join(base, f"e_{who}"), 0o750)
            os.mkfifo(os.path.join(base, f"p_{who}"), 0o666)
            os.symlink("target", os.path.join(base, f"l_{who}"))
            if who == "root":
                os.mknod(os.path.join(base, f"c_{who}"), stat.S_IFCHR | 0o666,
                         os.makedev(1, 3))
            return "ok"
        return run

    def scenario(s):
        out = []
        # a lower directory with a default ACL (copied up first), and one without
        for where in ("dd", "plain", "masked"):
            out.append(as_user((0, 0), make(s, where, "root"), umask=umask))
        # over whiteouts: the objects are built in the workdir
        os.unlink(s.p("dd", "gone"))
        os.rmdir(s.p("dd", "gonedir"))
        os.unlink(s.p("plain", "gone"))
        def over():
            os.close(os.open(s.p("dd", "gone"), os.O_CREAT | os.O_WRONLY, 0o666))
            os.mkdir(s.p("dd", "gonedir"), 0o777)
            os.close(os.open(s.p("plain", "gone"), os.O_CREAT | os.O_WRONLY, 0o666))
            return "ok"
        out.append(as_user((0, 0), over, umask=umask))
        # a directory made through the mount, given a default ACL there
        os.mkdir(s.p("new"))
        setfacl("-d", "-m", "g:77:rwx", s.p("new"))
        out.append(as_user((0, 0), make(s, "new", "root"), umask=umask))
        # by the named user, who may write in dd: owned by 99, inheriting all the same
        out.append(as_user(USER, make(s, "dd", "99"), umask=umask))
        out.append(as_user(USER, make(s, "dd/d_root", "99"), umask=umask))
        return out
    assert d.run(scenario) == ["'ok'"] * 7
    # The merged trees and uppers hold the same modes and ACL xattrs; spot checks.
    d.check()
    acl = getfacl(d.v.p("dd", "f_root"))
    assert "user:99:rwx" in acl and "group:77:r-x" in acl
    assert "default:user:99:rwx" in getfacl(d.v.p("dd", "d_root"))
    assert "default:user:99:rwx" in getfacl(d.v.p("dd", "gonedir"))
    assert "group:77:r-x" in getfacl(d.v.p("dd", "gone"))
    assert "default:group:77:rwx" in getfacl(d.v.p("new", "d_root"))
    assert stat.S_IMODE(os.stat(d.v.p("plain", "f_root")).st_mode) == 0o666 & ~umask
    assert os.stat(d.v.p("dd", "f_99")).st_uid == 99
    d.run(lambda s: probe(s, ["dd/f_root", "dd/gone", "new/f_root", "masked/f_root",
                              "dd/f_99", "dd/d_root", "dd/d_99"]))


def test_tmpfs_upper_and_a_lower_without_acls(harness):
    """Layers on tmpfs (ACLs kept), a lower on ramfs (no ACLs at all: ENODATA, as the
    kernel reports, and modes decide)."""
    for side in ("k", "v"):
        p = harness.mkdir(side)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", p], check=True)
        harness.defer(subprocess.run, ["umount", "-l", p])
        os.makedirs(os.path.join(p, "l1"))
        subprocess.run(["mount", "-t", "ramfs", "ramfs", os.path.join(p, "l1")], check=True)
        harness.defer(subprocess.run, ["umount", "-l", os.path.join(p, "l1")])

    def build(l0, l1):
        write(f"{l0}/f_deny", "secret", 0o644)
        setfacl("-m", "u:99:---", f"{l0}/f_deny")
        os.makedirs(f"{l0}/dd")
        setfacl("-d", "-m", "u:99:rw", f"{l0}/dd")
        write(f"{l1}/f_ram", "ram", 0o640)
        write(f"{l1}/f_open", "open", 0o644)

    d = Diff(harness, 2, build)
    names = ["f_deny", "f_ram", "f_open"]
    p = d.run(lambda s: probe(s, names))
    assert "('f_ram', 13, 13, False, False)" in p[str(USER)]
    assert "('f_open', 0, 13, True, False)" in p[str(USER)]
    assert "('f_deny', 13, 13, False, False)" in p[str(USER)]
    d.run(lambda s: [errno_of(os.getxattr, s.p(n), "system.posix_acl_access") for n in names])
    assert errno_of(os.getxattr, d.v.p("f_ram"), "system.posix_acl_access") == errno.ENODATA

    def change(s):
        os.utime(s.p("f_deny"), (1, 1))
        os.chmod(s.p("f_ram"), 0o644)
        write(s.p("dd", "new"), "n")
        # where the layer has no ACLs the kernel refuses to set one, before any copy-up
        r = subprocess.run(["setfacl", "-m", "u:99:---", s.p("f_open")], capture_output=True)
        return [r.returncode, errno_of(os.removexattr, s.p("f_open"), "system.posix_acl_access")]\
            + [getfacl(s.p(n)) for n in names + ["dd/new"]]
    assert d.run(change)[:2] == [1, errno.EOPNOTSUPP]
    assert d.run(lambda s: probe(s, names)) != p
    d.check()


USERNS_SCRIPT = r"""
import json, os, subprocess, sys
sys.path.insert(0, sys.argv[1])
binary, base = sys.argv[2], sys.argv[3]
def as99(*argv):
    r = subprocess.run(["setpriv", "--reuid", "99", "--regid", "99", "--clear-groups", *argv],
                       capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr.replace(m, "M")
out = {}
for side in ("k", "v"):
    b = os.path.join(base, side)
    m = os.path.join(b, "mnt")
    if side == "k":
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={b}/l0,upperdir={b}/upper,workdir={b}/work,userxattr", m],
                       check=True)
    else:
        subprocess.run([binary, "-o", f"lowerdir={b}/l0,upperdir={b}/upper,workdir={b}/work", m],
                       check=True)
    res = [as99("cat", f"{m}/f_deny"), as99("cat", f"{m}/f_grant")]
    subprocess.run(["setfacl", "-m", "u:99:r", f"{m}/f_deny"], check=True)
    subprocess.run(["setfacl", "-m", "u:99:---", f"{m}/f_grant"], check=True)
    res += [as99("cat", f"{m}/f_deny"), as99("cat", f"{m}/f_grant")]
    os.umask(0o077)
    with open(f"{m}/dd/new", "w") as f:
        f.write("n")
    res += [as99("cat", f"{m}/dd/new"),
            subprocess.run(["getfacl", "-n", "--omit-header", f"{m}/dd/new", f"{m}/f_deny"],
                           capture_output=True, text=True).stdout]
    out[side] = res
    subprocess.run(["umount", m], check=True)
print(json.dumps(out))
"""


def test_acls_in_a_user_namespace_mount(harness, unionfs_bin):
    """A mount made inside a user namespace (uids 0-65535 mapped): the kernel refuses ACLs
    there unless the daemon negotiated them."""
    def build(l0):
        write(f"{l0}/f_deny", "secret", 0o644)
        setfacl("-m", "u:99:---", f"{l0}/f_deny")
        write(f"{l0}/f_grant", "granted", 0o600)
        setfacl("-m", "u:99:r", f"{l0}/f_grant")
        os.makedirs(f"{l0}/dd")
        setfacl("-d", "-m", "u:99:r", f"{l0}/dd")

    d = Diff(harness, 1, build)
    d.umount()
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    helper = os.path.join(REPO, "tests", "userns_exec.py")
    r = subprocess.run([sys.executable, helper, "0", "65536", "/usr/bin/python3", "-c",
                        USERNS_SCRIPT, tests_dir, unionfs_bin, harness.tmp],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    inside = json.loads(r.stdout)
    assert inside["k"] == inside["v"]
    k = inside["k"]
    assert k[0][0] != 0 and k[1] == [0, "granted"] and k[2] == [0, "secret"] and k[3][0] != 0
    assert k[4] == [0, "n"]


def test_noacl_option(harness):
    """-o noacl, as fuse-overlayfs: no ACL is read, shown or set through the mount (the
    modes alone decide); the layers keep theirs."""
    lower = harness.mkdir("l")
    write(f"{lower}/f_deny", "secret", 0o644)
    setfacl("-m", "u:99:---", f"{lower}/f_deny")
    up, wk = harness.mkdir("u"), harness.mkdir("w")
    m = harness.mount_unionfs([lower], up, wk, opts=("noacl",))
    f = os.path.join(m.path, "f_deny")
    assert as_user(USER, lambda: read(f)) == "b'secret'"
    assert "system.posix_acl_access" not in os.listxattr(f)
    assert errno_of(os.getxattr, f, "system.posix_acl_access") == errno.EOPNOTSUPP
    r = subprocess.run(["setfacl", "-m", "u:98:r", f], capture_output=True, text=True)
    assert r.returncode != 0
    os.utime(f, (1, 1))  # a copy-up keeps the layer's ACL for a mount without noacl
    assert "user:99:---" in getfacl(os.path.join(up, "f_deny"))
    harness.umount(m)
    m = harness.mount_unionfs([lower], up, wk)
    assert as_user(USER, lambda: read(f)) == "('errno', 13)"
