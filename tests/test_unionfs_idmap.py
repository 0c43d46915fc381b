# SPDX-License-Identifier: GPL-2.0-or-later
"""The owner options podman and buildah pass to a mount_program: uidmapping=, gidmapping=,
squash_to_root, squash_to_uid=, squash_to_gid=, static_nlink, xattr_permissions=; and the
virtual user.veneer.layer xattr.

The kernel overlay has no equivalent of these options (an idmapped lower is a different
thing), so fuse-overlayfs, whose options they are, is the oracle: the same layers are mounted
by both with the same options, the same calls are made through both, and the owners shown
and the ids written to the uppers must match. Where veneer deliberately differs (a chown to an
id outside the mapping fails with EOVERFLOW, as on a kernel idmapped mount, where
fuse-overlayfs stores the overflow id) the test says so.
"""
import errno
import os
import shutil
import subprocess
import time

import pytest

from unionfs_diff import let_others_in
from veneer_harness import errno_of, mounted_at, require

UIDMAP = "0:100:50:1000:2000:10"
GIDMAP = "0:200:50:1000:3000:10"
MAP_OPTS = (f"uidmapping={UIDMAP}", f"gidmapping={GIDMAP}")


def _layers(harness, name):
    """A lower with owners inside and outside the mappings, an upper and a workdir."""
    root = harness.mkdir(name)
    low = os.path.join(root, "l")
    os.makedirs(f"{low}/d/sub")
    for n, (uid, gid) in {"a": (5, 6), "b": (70, 71), "c": (1003, 1004), "r": (0, 0)}.items():
        with open(f"{low}/{n}", "w") as f:
            f.write(n)
        os.chown(f"{low}/{n}", uid, gid)
    os.symlink("a", f"{low}/ln")
    os.lchown(f"{low}/ln", 1001, 1002)
    os.chown(f"{low}/d", 1003, 1004)
    os.chmod(f"{low}/d", 0o777)
    os.chown(f"{low}/d/sub", 1, 1)
    up, wk = os.path.join(root, "u"), os.path.join(root, "w")
    os.makedirs(up)
    os.makedirs(wk)
    return low, up, wk


def _fuse_overlayfs(harness, low, up, wk, opts):
    require(shutil.which("fuse-overlayfs"), "fuse-overlayfs (the oracle) is not installed")
    mnt = harness.mkdir("fo-merged")
    o = ",".join([f"lowerdir={low}", f"upperdir={up}", f"workdir={wk}", "allow_other", *opts])
    m = harness.mount_fuse(["fuse-overlayfs", "-o", o], mnt, ready=False)
    for _ in range(200):
        if mounted_at(mnt):
            return m
        time.sleep(0.05)
    raise AssertionError(f"fuse-overlayfs did not mount: {m.daemon.output()}")


def _pair(harness, opts):
    """veneer and fuse-overlayfs over identical layers with the same options."""
    vl, vu, vw = _layers(harness, "v")
    fl, fu, fw = _layers(harness, "f")
    v = harness.mount_unionfs([vl], vu, vw, opts=opts)
    f = _fuse_overlayfs(harness, fl, fu, fw, opts)
    return (v.path, vu), (f.path, fu)


def _owners(root):
    """Owners of every name but whiteouts and opaque markers (fuse-overlayfs writes
    .wh..wh..opq files in new directories, veneer the kernel's xattr)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [*dirnames, *filenames]:
            if n.startswith(".wh."):
                continue
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_uid, st.st_gid)
    return out


def _as(uid, gid, *argv):
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
                           *argv], capture_output=True, text=True)


def test_mapping_owners_match_fuse_overlayfs(harness, unionfs_bin, need_fuse):
    """Stored ids show through the mapping; ids outside it show as the overflow ids."""
    (vm, _), (fm, _) = _pair(harness, MAP_OPTS)
    shown = _owners(vm)
    assert shown == _owners(fm)
    with open("/proc/sys/kernel/overflowuid") as f:
        ouid = int(f.read())
    with open("/proc/sys/kernel/overflowgid") as f:
        ogid = int(f.read())
    assert shown["a"] == (105, 206)
    assert shown["b"] == (ouid, ogid)
    assert shown["c"] == (2003, 3004)
    assert shown["r"] == (100, 200)
    assert shown["ln"] == (2001, 3002)
    assert shown["d/sub"] == (101, 201)
    st = os.stat(vm)
    assert (st.st_uid, st.st_gid) == (os.stat(fm).st_uid, os.stat(fm).st_gid)


def test_mapping_as_podman_writes_it(harness, unionfs_bin, need_fuse):
    """The containers/storage of podman 4.3 (Debian 12) writes a ':' before the first range
    ("uidmapping=:0:1:2000", test_unionfs_podman_rootless.py); fuse-overlayfs skips empty
    fields, and so does veneer, which refused the mount before."""
    (vm, _), (fm, _) = _pair(harness, (f"uidmapping=:{UIDMAP}", f"gidmapping=:{GIDMAP}"))
    shown = _owners(vm)
    assert shown == _owners(fm)
    assert shown["a"] == (105, 206)
    assert shown["c"] == (2003, 3004)


def test_mapping_writes_stored_ids(harness, unionfs_bin, need_fuse):
    """chown and new objects through the mapping store the layer's ids in the upper, as
    fuse-overlayfs does; the caller's ids are mapped back the same way."""
    let_others_in(harness)
    (vm, vu), (fm, fu) = _pair(harness, MAP_OPTS)
    for m in (vm, fm):
        os.chown(f"{m}/a", 2005, 3006)
        os.lchown(f"{m}/ln", 120, 220)
        r = _as(101, 201, "touch", f"{m}/d/new")
        assert r.returncode == 0, r.stderr
        r = _as(101, 201, "mkdir", f"{m}/d/newdir")
        assert r.returncode == 0, r.stderr
    assert _owners(vm) == _owners(fm)
    stored = _owners(vu)
    assert stored == _owners(fu)
    assert stored["a"] == (1005, 1006)
    assert stored["ln"] == (20, 20)
    assert stored["d/new"] == (1, 1)
    assert stored["d/newdir"] == (1, 1)
    assert (os.stat(f"{vm}/d/new").st_uid, os.stat(f"{vm}/d/new").st_gid) == (101, 201)


def test_mapping_refuses_unmapped_ids(harness, unionfs_bin, need_fuse):
    """A chown to an id the mapping cannot store is refused with EOVERFLOW and nothing is
    written (a kernel idmapped mount does so; fuse-overlayfs would store the overflow id)."""
    low, up, wk = _layers(harness, "v")
    let_others_in(harness)
    m = harness.mount_unionfs([low], up, wk, opts=MAP_OPTS).path
    assert errno_of(os.chown, f"{m}/a", 7777, -1) == errno.EOVERFLOW
    assert errno_of(os.chown, f"{m}/a", -1, 7777) == errno.EOVERFLOW
    st = os.stat(f"{low}/a")
    assert (st.st_uid, st.st_gid) == (5, 6)
    # the copy-up the refused chown made (if any) keeps the lower's ids
    if os.path.lexists(f"{up}/a"):
        st = os.stat(f"{up}/a")
        assert (st.st_uid, st.st_gid) == (5, 6)
    # and the same calls are allowed where the mapping has the ids
    os.chown(f"{m}/a", 2009, 3009)
    assert (os.stat(f"{up}/a").st_uid, os.stat(f"{up}/a").st_gid) == (1009, 1009)


def test_unmapped_caller_makes_overflow_owned(harness, unionfs_bin, need_fuse):
    """A new object made by a caller no range covers (the mount's own side: podman makes
    /etc/mtab as root of its user namespace before the container starts) is stored with
    the overflow ids where the mapping has none, as fuse-overlayfs does. veneer refused it
    with EOVERFLOW, and no `podman run --uidmap` started (test_unionfs_podman_rootless.py)."""
    let_others_in(harness)
    (vm, vu), (fm, fu) = _pair(harness, MAP_OPTS)
    with open("/proc/sys/kernel/overflowuid") as f:
        ouid = int(f.read())
    with open("/proc/sys/kernel/overflowgid") as f:
        ogid = int(f.read())
    for m in (vm, fm):
        # gid 200 is mapped, uid 7777 is not (no touch: the file it makes is not its own,
        # so touch's utimensat fails)
        r = _as(7777, 200, "sh", "-c", f": > {m}/d/x")
        assert r.returncode == 0, r.stderr
        r = _as(7777, 7777, "mkdir", f"{m}/d/y")
        assert r.returncode == 0, r.stderr
        os.symlink("/proc/mounts", f"{m}/mtab")  # as root, which the mapping has not
    assert _owners(vm) == _owners(fm)
    stored = _owners(vu)
    assert stored == _owners(fu)
    assert stored["d/x"] == (ouid, 0)
    assert stored["d/y"] == (ouid, ogid)
    assert stored["mtab"] == (ouid, ogid)
    # and a chown through the mapping gives it a stored owner, as podman then does
    os.lchown(f"{vm}/mtab", 100, 200)
    assert _owners(vu)["mtab"] == (0, 0)


def _facl(path):
    """The named entries of path's access ACL, numeric ("user:107:r--" ...)."""
    out = subprocess.run(["getfacl", "-cpn", path], capture_output=True, text=True, check=True)
    return sorted(ln for ln in out.stdout.split()
                  if ln.split(":")[0] in ("user", "group") and ln.split(":")[1])


def test_mapping_shifts_acl_ids(harness, unionfs_bin, need_fuse):
    """POSIX ACLs name ids too, and the mapping shifts them as it shifts owners: an ACL
    entry naming a stored id shows its mapped id (the overflow id outside the mapping), and
    setfacl through the mount stores the layer's ids. Before, an ACL set in a container
    named the host id of the same number, and a layer's ACL entry for a host user granted
    a container user of the same number."""
    require(shutil.which("setfacl"), "setfacl (package acl) is not installed")
    low, up, wk = _layers(harness, "v")
    let_others_in(harness)
    with open("/proc/sys/kernel/overflowuid") as f:
        ouid = int(f.read())
    # a lower file whose ACL names stored ids: 7 and 1003 mapped, 70 not; group 8 mapped
    subprocess.run(["setfacl", "-m", "u:7:r,u:1003:rw,u:70:r,g:8:r", f"{low}/a"], check=True)
    m = harness.mount_unionfs([low], up, wk, opts=MAP_OPTS).path
    assert _facl(f"{m}/a") == sorted(["user:107:r--", "user:2003:rw-", f"user:{ouid}:r--",
                                      "group:208:r--"])
    # setfacl through the mount stores the layer's ids, and reads back as set
    subprocess.run(["setfacl", "-m", "u:2005:rwx,g:3006:r", f"{m}/c"], check=True)
    assert _facl(f"{up}/c") == ["group:1006:r--", "user:1005:rwx"]
    assert _facl(f"{m}/c") == ["group:3006:r--", "user:2005:rwx"]
    subprocess.run(["setfacl", "-d", "-m", "u:101:rx", f"{m}/d"], check=True)
    out = subprocess.run(["getfacl", "-cpnd", f"{up}/d"], capture_output=True, text=True,
                         check=True).stdout.split()
    assert "user:1:r-x" in out
    # a new file inherits the default ACL in the layer's ids and shows it mapped
    with open(f"{m}/d/inh", "w"):
        pass
    assert [e.split(":")[1] for e in _facl(f"{up}/d/inh")] == ["1"]
    assert [e.split(":")[1] for e in _facl(f"{m}/d/inh")] == ["101"]
    # an id the mapping cannot store is refused, and nothing is copied up
    r = subprocess.run(["setfacl", "-m", "u:7777:r", f"{m}/b"], capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    assert not os.path.lexists(f"{up}/b")
    r = subprocess.run(["setfacl", "-m", "g:7777:r", f"{m}/r"], capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid argument" in r.stderr, r.stderr
    assert not os.path.lexists(f"{up}/r")


def test_mapping_acl_grants_no_foreign_id(harness, unionfs_bin, need_fuse):
    """The attack: a layer's file, 0600, whose ACL grants stored id 2003 -- a host user the
    mapping does not cover -- must not be readable by the container's uid 2003 (stored as
    1003). Unmapped, the kernel checked the raw entry and let uid 2003 read it. Without the
    mapping the same entry grants that uid (so the ACL itself works and the test can fail)."""
    require(shutil.which("setfacl"), "setfacl (package acl) is not installed")
    low, up, wk = _layers(harness, "v")
    let_others_in(harness)
    with open(f"{low}/secret", "w") as f:
        f.write("host user 2003's\n")
    os.chmod(f"{low}/secret", 0o600)
    subprocess.run(["setfacl", "-m", "u:2003:r", f"{low}/secret"], check=True)
    m = harness.mount_unionfs([low], up, wk, opts=MAP_OPTS).path
    r = _as(2003, 3004, "cat", f"{m}/secret")
    assert r.returncode != 0 and "Permission denied" in r.stderr, (r.stdout, r.stderr)
    r = _as(2003, 3004, "sh", "-c", f": >> {m}/secret")
    assert r.returncode != 0
    assert not os.path.lexists(f"{up}/secret")
    low2, up2, wk2 = _layers(harness, "plain")
    with open(f"{low2}/secret", "w") as f:
        f.write("host user 2003's\n")
    os.chmod(f"{low2}/secret", 0o600)
    subprocess.run(["setfacl", "-m", "u:2003:r", f"{low2}/secret"], check=True)
    m2 = harness.mount_unionfs([low2], up2, wk2, mnt=harness.mkdir("plain-merged")).path
    r = _as(2003, 3004, "cat", f"{m2}/secret")
    assert r.returncode == 0 and r.stdout == "host user 2003's\n", r.stderr


@pytest.mark.parametrize("opts,want", [
    (("squash_to_root",), (0, 0)),
    (("squash_to_uid=1234", "squash_to_gid=4321"), (1234, 4321)),
    (("squash_to_uid=77",), (77, None)),
])
def test_squash_matches_fuse_overlayfs(harness, unionfs_bin, need_fuse, opts, want):
    """Every object shows the squashed owner; a chown is accepted and the upper gets the
    ids asked for (the daemon here may chown), as with fuse-overlayfs."""
    (vm, vu), (fm, fu) = _pair(harness, opts)
    shown = _owners(vm)
    assert shown == _owners(fm)
    for n, (uid, gid) in shown.items():
        assert uid == want[0], n
        if want[1] is not None:
            assert gid == want[1], n
    if want[1] is None:
        assert shown["a"][1] == 6  # the group is not squashed
    for m in (vm, fm):
        os.chown(f"{m}/a", 42, 43)
        with open(f"{m}/made", "w") as f:
            f.write("x")
    assert _owners(vm) == _owners(fm)
    assert (os.stat(f"{vu}/a").st_uid, os.stat(f"{vu}/a").st_gid) == (42, 43)
    assert (os.stat(f"{vu}/a").st_uid, os.stat(f"{vu}/a").st_gid) == \
        (os.stat(f"{fu}/a").st_uid, os.stat(f"{fu}/a").st_gid)


def test_static_nlink(harness, unionfs_bin, need_fuse):
    """static_nlink: every directory shows one link, as with fuse-overlayfs; files keep
    theirs."""
    (vm, _), (fm, _) = _pair(harness, ("static_nlink",))
    os.link(f"{vm}/a", f"{vm}/a2")
    os.link(f"{fm}/a", f"{fm}/a2")
    for m in (vm, fm):
        assert os.stat(f"{m}/d").st_nlink == 1
        assert os.stat(f"{m}/d/sub").st_nlink == 1
        assert os.stat(f"{m}/a").st_nlink == 2
    plain_low, plain_up, plain_wk = _layers(harness, "plain")
    plain = harness.mount_unionfs([plain_low], plain_up, plain_wk, mnt=harness.path("pm"))
    assert os.stat(f"{plain.path}/d").st_nlink == 3  # without the option: ., .., sub


def test_xattr_permissions(harness, unionfs_bin, need_fuse):
    """xattr_permissions=2: chown and chmod write user.fuseoverlayfs.override_stat in the
    upper in fuse-overlayfs's format and leave the inode alone; stat shows the override;
    the xattr is neither listed nor readable nor settable through the mount. An upper
    written so reads the same under fuse-overlayfs, and the other way round."""
    name = "user.fuseoverlayfs.override_stat"
    low, up, wk = _layers(harness, "v")
    m = harness.mount_unionfs([low], up, wk, opts=("xattr_permissions=2",))
    vm = m.path
    os.chown(f"{vm}/a", 4242, 4343)
    os.chmod(f"{vm}/a", 0o4710)
    with open(f"{vm}/d/new", "w") as f:
        f.write("n")
    os.chmod(f"{vm}/d/new", 0o600)
    os.chown(f"{vm}/d/new", 9, 10)
    os.mkdir(f"{vm}/newdir", 0o701)
    assert os.getxattr(f"{up}/a", name) == b"4242:4343:4710"
    assert os.getxattr(f"{up}/d/new", name) == b"9:10:600"
    st = os.stat(f"{up}/a")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (5, 6, 0o644)  # the inode's own
    want = {}
    for n in ("a", "d/new", "newdir", "c", "d"):
        st = os.stat(f"{vm}/{n}")
        want[n] = (st.st_uid, st.st_gid, st.st_mode)
    assert want["a"] == (4242, 4343, 0o104710)
    assert want["d/new"] == (9, 10, 0o100600)
    assert want["newdir"][2] == 0o40701
    assert name not in os.listxattr(f"{vm}/a")
    assert errno_of(os.getxattr, f"{vm}/a", name) == errno.ENODATA
    assert errno_of(os.setxattr, f"{vm}/a", name, b"0:0:777") == errno.EPERM
    harness.umount(m)
    # fuse-overlayfs reads the same upper the same way
    fm = _fuse_overlayfs(harness, low, up, wk, ("xattr_permissions=2",)).path
    for n, w in want.items():
        st = os.stat(f"{fm}/{n}")
        assert (st.st_uid, st.st_gid, st.st_mode) == w, n
    os.chown(f"{fm}/c", 31, 32)  # fuse-overlayfs writes one, veneer reads it
    harness.umount(harness_mount_of(harness, fm))
    m2 = harness.mount_unionfs([low], up, wk, opts=("xattr_permissions=2",),
                               mnt=harness.path("again"))
    st = os.stat(f"{m2.path}/c")
    assert (st.st_uid, st.st_gid) == (31, 32)
    for n, w in want.items():
        if n != "c":
            st = os.stat(f"{m2.path}/{n}")
            assert (st.st_uid, st.st_gid, st.st_mode) == w, n
    st = os.stat(f"{low}/a")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (5, 6, 0o644)


def harness_mount_of(harness, path):
    for fn, args in harness._cleanups:
        if fn == harness.umount and args[0].path == path:
            return args[0]
    raise KeyError(path)


def test_layer_xattr(harness, unionfs_bin, need_fuse):
    """user.veneer.layer names the layer a name comes from; it is not listed, not stored
    and cannot be set or removed."""
    root = harness.mkdir("t")
    l1, l2 = os.path.join(root, "l1"), os.path.join(root, "l2")
    os.makedirs(f"{l1}/d")
    os.makedirs(f"{l2}/d")
    for p in (f"{l1}/top", f"{l2}/bottom", f"{l2}/d/deep"):
        with open(p, "w") as f:
            f.write("x")
    up, wk = harness.mkdir("u"), harness.mkdir("w")
    m = harness.mount_unionfs([l1, l2], up, wk).path
    x = "user.veneer.layer"
    assert os.getxattr(f"{m}/top", x) == f"lower:1:{os.path.realpath(l1)}".encode()
    assert os.getxattr(f"{m}/bottom", x) == f"lower:2:{os.path.realpath(l2)}".encode()
    assert os.getxattr(f"{m}/d/deep", x) == f"lower:2:{os.path.realpath(l2)}".encode()
    assert os.getxattr(f"{m}/d", x) == f"lower:1:{os.path.realpath(l1)}".encode()
    assert os.getxattr(m, x) == b"upper"
    with open(f"{m}/bottom", "a") as f:
        f.write("y")
    assert os.getxattr(f"{m}/bottom", x) == b"upper"
    assert x not in os.listxattr(f"{m}/bottom")
    assert x not in os.listxattr(f"{up}/bottom")
    assert errno_of(os.setxattr, f"{m}/top", x, b"upper") == errno.EPERM
    assert errno_of(os.removexattr, f"{m}/top", x) == errno.EPERM
    assert not os.path.lexists(f"{up}/top")  # the refused set made no copy-up
    r = subprocess.run(["getfattr", "-n", x, "--only-values", f"{m}/top"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == f"lower:1:{os.path.realpath(l1)}"
