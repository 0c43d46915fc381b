# SPDX-License-Identifier: GPL-2.0-or-later
"""Real tools through veneer-unionfs, each run the same way on kernel overlay.

Both mounts share the same two read-only lower layers (with a whiteout, an
opaque dir, hard links, a symlink, odd modes and owners, a user xattr) and get
their own upper; each tool runs in both and the merged trees (and what the
tools print) must match: tar extract and create, cp -a, rsync -a, find, du,
git init + commits, sqlite3 with fsync, a gcc build run from the mount.
"""
import os
import shutil
import subprocess

import pytest

from unionfs_layers import make_layers, write_file
from veneer_harness import require, snapshot


class Pair:
    """The same layers mounted by the kernel (k) and by veneer (v)."""

    def __init__(self, h, lowers):
        self.h = h
        self.lowers = lowers
        self.kupper, self.kwork = h.mkdir("kupper"), h.mkdir("kwork")
        self.vupper, self.vwork = h.mkdir("vupper"), h.mkdir("vwork")
        self.k = h.mount_overlay(lowers, self.kupper, self.kwork, mnt=h.path("kmnt"))
        self.v = h.mount_unionfs(lowers, self.vupper, self.vwork, mnt=h.path("vmnt"))

    @property
    def mnts(self):
        return (self.k.path, self.v.path)

    def run(self, argv_fn, cwd_rel=".", env=None):
        """Run argv_fn(mnt) in both mounts; return the two CompletedProcess."""
        out = []
        for mnt in self.mnts:
            r = subprocess.run(argv_fn(mnt), cwd=os.path.join(mnt, cwd_rel), env=env,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"{r.args} in {mnt} failed: {r.stdout}{r.stderr}"
            out.append(r)
        return out

    def assert_same(self, rel="."):
        k = snapshot(os.path.join(self.k.path, rel))
        v = snapshot(os.path.join(self.v.path, rel))
        diff = {p: (k.get(p), v.get(p)) for p in set(k) | set(v) if k.get(p) != v.get(p)}
        assert not diff, f"kernel vs veneer differ (kernel, veneer): {diff}"
        assert k, "the compared tree is empty"

    def assert_same_upper_paths(self):
        """The same names reach the upper dirs (copy-up of parents, whiteouts)."""
        def kinds(root):
            out = {}
            for dirpath, dirnames, filenames in os.walk(root):
                for n in dirnames + filenames:
                    p = os.path.join(dirpath, n)
                    st = os.lstat(p)
                    out[os.path.relpath(p, root)] = (st.st_mode & 0o170000, st.st_rdev)
            return out
        assert kinds(self.kupper) == kinds(self.vupper)


@pytest.fixture
def pair(harness, unionfs_bin, need_fuse, need_overlay):
    return Pair(harness, make_layers(harness))


def _tool(name):
    require(shutil.which(name) is not None, f"{name} is not installed")


def test_tar_extract_over_layers(pair, harness):
    src = harness.mkdir("tarsrc")
    write_file(f"{src}/etc/conf", "from the tarball\n", 0o600)
    write_file(f"{src}/usr/share/doc/f03.txt", "replaced\n")
    write_file(f"{src}/usr/share/doc/b.txt", "back again\n")
    write_file(f"{src}/opq/old1", "tar old1\n")
    write_file(f"{src}/newdir/deep/file", "deep\n", 0o751)
    os.link(f"{src}/newdir/deep/file", f"{src}/newdir/link")
    os.symlink("deep/file", f"{src}/newdir/sym")
    os.setxattr(f"{src}/newdir/deep/file", "user.tar", b"kept")
    tarball = harness.path("in.tar")
    subprocess.run(["tar", "--xattrs", "-C", src, "-cf", tarball, "."], check=True)
    pair.run(lambda m: ["tar", "--xattrs", "--xattrs-include=user.*", "-xpf", tarball])
    pair.assert_same()
    pair.assert_same_upper_paths()


def test_tar_create_from_merged(pair, harness):
    outs = []
    for tag, mnt in zip("kv", pair.mnts):
        tarball = harness.path(f"{tag}.tar")
        subprocess.run(["tar", "--xattrs", "--sort=name", "-C", mnt, "-cf", tarball, "."],
                       check=True)
        dst = harness.mkdir(f"{tag}-extracted")
        subprocess.run(["tar", "--xattrs", "--xattrs-include=user.*", "-xpf", tarball,
                        "-C", dst], check=True)
        listing = subprocess.run(["tar", "-tvf", tarball], check=True, capture_output=True,
                                 text=True).stdout
        # Names, modes, owners and sizes; times may differ between the mounts.
        outs.append((snapshot(dst), [ln.split()[:3] + ln.split()[5:] for ln in
                                     listing.splitlines()]))
    assert outs[0] == outs[1]
    names = [ln[3] for ln in outs[1][1]]
    assert "./usr/share/doc/b.txt" not in names and "./opq/old1" not in names
    assert "./opq/new" in names and "./data/hl2" in names


def test_cp_a_within_and_out_of_the_mount(pair, harness):
    pair.run(lambda m: ["cp", "-a", "data", "data-copy"])
    pair.run(lambda m: ["cp", "-a", "usr/share/doc/f01.txt", "etc/conf"])
    pair.assert_same()
    pair.assert_same_upper_paths()
    outs = []
    for tag, mnt in zip("kv", pair.mnts):
        dst = harness.path(f"{tag}-out")
        subprocess.run(["cp", "-a", mnt, dst], check=True)
        outs.append(snapshot(dst))
    assert outs[0] == outs[1]
    # cp -a keeps the hard link pair as a pair.
    assert outs[1]["data-copy/hl1"][7] == 2


def test_rsync_a_into_the_mount(pair, harness):
    _tool("rsync")
    src = harness.mkdir("rsrc")
    for i in range(0, 20, 2):
        write_file(f"{src}/f{i:02}.txt", f"doc {i}\n" * (i + 1))  # same content: nothing to do
    write_file(f"{src}/f05.txt", "changed by rsync\n", 0o604)
    write_file(f"{src}/sub/new", "new\n")
    os.symlink("f05.txt", f"{src}/sym")
    pair.run(lambda m: ["rsync", "-a", "--delete", "--checksum", src + "/", "usr/share/doc/"])
    pair.assert_same()
    pair.assert_same_upper_paths()
    assert sorted(os.listdir(os.path.join(pair.v.path, "usr/share/doc"))) == \
        sorted(os.listdir(src))


def test_find_and_du_after_changes(pair):
    for mnt in pair.mnts:
        os.unlink(f"{mnt}/etc/conf")
        shutil.rmtree(f"{mnt}/usr/share/doc")
        os.makedirs(f"{mnt}/usr/share/doc")
        write_file(f"{mnt}/usr/share/doc/only", "only\n")
        os.rename(f"{mnt}/data/hl1", f"{mnt}/data/renamed")
    k, v = pair.run(lambda m: ["find", ".", "-printf", "%p %y %m %U:%G %n %l\\n"])
    klines, vlines = sorted(k.stdout.splitlines()), sorted(v.stdout.splitlines())
    # A directory's link count is not defined the same way by both: drop it.
    strip = [(ln.split()[:4] if ln.split()[1] == "d" else ln.split()) for ln in klines]
    assert strip == [(ln.split()[:4] if ln.split()[1] == "d" else ln.split()) for ln in vlines]
    assert any(ln.startswith("./usr/share/doc/only ") for ln in vlines)
    assert not any(ln.startswith("./etc/conf ") for ln in vlines)
    k, v = pair.run(lambda m: ["find", ".", "-type", "f", "-newer", "src/hello.c"])
    assert sorted(k.stdout.split()) == sorted(v.stdout.split())
    # du: apparent sizes of files and the allocated blocks of the sparse file.
    k, v = pair.run(lambda m: ["du", "-ab", "--apparent-size", "data", "usr", "src", "opq"])
    files = {p for p in (ln.split("\t")[1] for ln in v.stdout.splitlines())
             if not os.path.isdir(os.path.join(pair.v.path, p))}
    kd = {ln.split("\t")[1]: ln.split("\t")[0] for ln in k.stdout.splitlines()}
    vd = {ln.split("\t")[1]: ln.split("\t")[0] for ln in v.stdout.splitlines()}
    assert {p: kd.get(p) for p in files} == {p: vd[p] for p in files}
    k, v = pair.run(lambda m: ["du", "-k", "data/sparse"])
    assert k.stdout == v.stdout
    assert int(v.stdout.split()[0]) < 1024, "the sparse lower file lost its holes"


def test_git_init_and_commit(pair):
    _tool("git")
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.org",
               GIT_AUTHOR_DATE="2020-01-01T00:00:00Z", GIT_COMMITTER_DATE="2020-01-01T00:00:00Z",
               HOME=pair.h.mkdir("githome"), GIT_CONFIG_NOSYSTEM="1")

    def git(*args):
        return pair.run(lambda m: ["git", "-c", "init.defaultBranch=main",
                                   "-c", f"safe.directory={m}", *args], env=env)
    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    for mnt in pair.mnts:
        write_file(f"{mnt}/src/greet.h", '#define GREETING "changed"\n')
        os.unlink(f"{mnt}/usr/share/doc/f07.txt")
    git("commit", "-q", "-a", "-m", "second")
    k, v = git("log", "--format=%H %s")
    assert k.stdout == v.stdout and len(v.stdout.splitlines()) == 2
    git("fsck", "--strict", "--no-progress")
    k, v = git("status", "--porcelain")
    assert k.stdout == v.stdout == ""


def test_sqlite_with_fsync_survives_remount(pair, harness):
    _tool("sqlite3")
    sql = ["PRAGMA journal_mode=DELETE;", "PRAGMA synchronous=FULL;",
           "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"]
    sql += [f"INSERT INTO t(v) VALUES('row {i}');" for i in range(200)]  # 200 fsync'd commits
    sql += ["BEGIN;", "UPDATE t SET v = v || '!' WHERE id % 3 = 0;", "DELETE FROM t WHERE id > 150;",
            "COMMIT;", "PRAGMA integrity_check;"]
    for mnt in pair.mnts:
        os.makedirs(f"{mnt}/db", exist_ok=True)
    k, v = pair.run(lambda m: ["sqlite3", "db/test.db", "\n".join(sql)])
    assert k.stdout == v.stdout and v.stdout.strip().endswith("ok")
    harness.umount(pair.v)
    pair.v = harness.mount_unionfs(pair.lowers, pair.vupper, pair.vwork, mnt=harness.path("vmnt"))
    k, v = pair.run(lambda m: ["sqlite3", "db/test.db", "SELECT count(*), group_concat(v) FROM t;"])
    assert k.stdout == v.stdout
    assert v.stdout.startswith("150|row 0,row 1,row 2!,")
    assert not os.path.exists(f"{pair.v.path}/db/test.db-journal")


def test_gcc_build_and_run_from_the_mount(pair):
    _tool("gcc")
    k, v = pair.run(lambda m: ["gcc", "-O2", "-o", "hello", "hello.c"], cwd_rel="src")
    outs = [subprocess.run([os.path.join(m, "src", "hello")], capture_output=True, text=True,
                           check=True).stdout for m in pair.mnts]
    assert outs == ["hello from the top, 42\n"] * 2
    # Same sources and relative names: the same binary byte for byte.
    pair.assert_same("src")
    pair.assert_same_upper_paths()


def test_ln_of_a_lower_file_shows_both_names_linked(harness, pair):
    """ln stats the source before link(): the cached attributes must see nlink 2 afterwards."""
    out = []
    for m in pair.mnts:
        subprocess.run(["ln", "usr/share/doc/f09.txt", "etc/f09-link"], cwd=m, check=True)
        r = subprocess.run(["stat", "-c", "%n %h %i", "usr/share/doc/f09.txt", "etc/f09-link"],
                           cwd=m, check=True, capture_output=True, text=True)
        out.append(r.stdout)
    assert out[0] == out[1]
    assert " 2 " in out[1].splitlines()[0]


def test_tar_create_right_after_copy_up(harness, pair):
    """A chown copies the parents up; tar must not see them change while it reads."""
    for mnt in pair.mnts:
        os.chown(os.path.join(mnt, "usr/share/doc/f01.txt"), 42, 42)
        r = subprocess.run(["tar", "-cf", harness.path(os.path.basename(mnt) + ".tar"), "usr"],
                           cwd=mnt, capture_output=True, text=True)
        assert r.returncode == 0, f"{mnt}: {r.stderr}"
