# SPDX-License-Identifier: GPL-2.0-or-later
"""Metadata-only copy-up (-o metacopy=on) against the kernel's overlayfs.

Both mounts run with metacopy=on over identical layers: chmod, chown, utimes and
xattr changes of a big lower file must copy no data (the upper file is sparse,
marked trusted.overlay.metacopy), reads still come from the lower, the first
write brings the data up. Renames and links leave the kernel's redirects; the
uppers are read across (veneer's by the kernel and the other way round); a
SIGKILL in the middle of a data copy-up leaves a consistent file.
"""
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import time

import pytest

from unionfs_diff import Diff, read
from veneer_harness import errno_of, lazy_umount, snapshot

MC = ("metacopy=on",)
MIB = 1 << 20
BIG = 4 * MIB
# An upper holding no data: at most its xattr block (ext4 puts big xattr sets in one).
NO_DATA = 64 * 1024


def _blob(size, seed):
    """size bytes, no holes, different per seed (cheap: one MiB repeated)."""
    chunk = hashlib.sha256(seed.encode()).digest() * (MIB // 32)
    return chunk * (size // MIB) + chunk[:size % MIB]


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for c in iter(lambda: f.read(MIB), b""):
            h.update(c)
    return h.hexdigest()


def _build(l0):
    os.makedirs(os.path.join(l0, "d"))
    os.makedirs(os.path.join(l0, "e"))
    for n in ("chmod", "chown", "touch", "xattr", "write", "trunc", "otrunc", "mv", "mvdir",
              "link", "rm", "d/inner"):
        with open(os.path.join(l0, n), "wb") as f:
            f.write(_blob(BIG, n))
    with open(os.path.join(l0, "small"), "w") as f:
        f.write("small\n")


def _lower_state(path):
    """Content and inode times (st_blocks moves by itself while ext4 allocates late)."""
    st = os.stat(path)
    return (_sha(path), st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


def _upper_bytes(side, rel):
    return os.stat(os.path.join(side.upper, rel)).st_blocks * 512


def _xattrs(path):
    return sorted(os.listxattr(path, follow_symlinks=False))


@pytest.fixture
def mc(harness, unionfs_bin, need_fuse, need_overlay):
    d = Diff(harness, 1, _build, opts=MC)
    os.sync()  # ext4 allocates late: the lowers' st_blocks settle before anything is looked up
    return d


def _metadata_ops(s):
    os.chmod(s.p("chmod"), 0o600)
    os.chown(s.p("chown"), 1234, 5678)
    os.utime(s.p("touch"), ns=(1_000_000_000, 2_000_000_000))
    os.setxattr(s.p("xattr"), "user.note", b"metacopy")
    os.chmod(s.p("d", "inner"), 0o640)


def test_metadata_changes_copy_no_data(mc):
    lower_before = {s.name: {n: _lower_state(os.path.join(s.lowers[0], n))
                             for n in ("chmod", "chown", "touch", "xattr")} for s in mc.sides}
    mc.run(_metadata_ops)
    for s in mc.sides:
        for n in ("chmod", "chown", "touch", "xattr", "d/inner"):
            up = os.path.join(s.upper, n)
            assert _upper_bytes(s, n) <= NO_DATA, f"{s.name}: {n} copied data up"
            assert os.stat(up).st_size == BIG
            assert "trusted.overlay.metacopy" in _xattrs(up), f"{s.name}: {n} not metacopy"
            low = os.path.join(s.lowers[0], n)
            # Reads come from the lower; stat shows its blocks, as the kernel reports.
            assert _sha(s.p(n)) == _sha(low)
            assert os.stat(s.p(n)).st_blocks == os.stat(low).st_blocks
        assert {n: _lower_state(os.path.join(s.lowers[0], n)) for n in lower_before[s.name]} \
            == lower_before[s.name], f"{s.name}: a lower file changed"
    assert os.stat(mc.v.p("chmod")).st_mode & 0o7777 == 0o600
    assert os.stat(mc.v.p("chown")).st_uid == 1234
    assert os.stat(mc.v.p("touch")).st_mtime_ns == 2_000_000_000
    assert os.getxattr(mc.v.p("xattr"), "user.note") == b"metacopy"
    # The marker is the format's, never content.
    assert "trusted.overlay.metacopy" not in os.listxattr(mc.v.p("chmod"))
    mc.check()
    mc.remount()
    mc.check()


def _data_ops(s):
    os.chmod(s.p("write"), 0o600)
    with open(s.p("write"), "ab") as f:
        f.write(b"appended")
    os.chmod(s.p("trunc"), 0o600)
    os.truncate(s.p("trunc"), 1000)
    os.chmod(s.p("otrunc"), 0o600)
    with open(s.p("otrunc"), "wb") as f:
        f.write(b"new")
    return [os.stat(s.p(n)).st_size for n in ("write", "trunc", "otrunc")]


def test_write_and_truncate_bring_the_data_up(mc):
    assert mc.run(_data_ops) == [BIG + 8, 1000, 3]
    for s in mc.sides:
        assert read(s.p("write")) == _blob(BIG, "write") + b"appended"
        assert read(s.p("trunc")) == _blob(BIG, "trunc")[:1000]
        for n in ("write", "trunc", "otrunc"):
            assert "trusted.overlay.metacopy" not in _xattrs(os.path.join(s.upper, n))
        assert _upper_bytes(s, "write") >= BIG
        assert _sha(os.path.join(s.lowers[0], "write")) == hashlib.sha256(
            _blob(BIG, "write")).hexdigest()
    mc.check()
    mc.remount()
    mc.check()


def _namespace_ops(s):
    os.chmod(s.p("mv"), 0o600)
    os.rename(s.p("mv"), s.p("mv2"))            # same dir: relative redirect
    os.rename(s.p("mv2"), s.p("e", "mv3"))      # another dir: absolute redirect
    os.rename(s.p("mvdir"), s.p("d", "moved"))  # a lower file moved: metacopy + redirect
    os.link(s.p("link"), s.p("e", "link2"))     # a link: absolute redirect on the inode
    os.chmod(s.p("rm"), 0o600)
    os.unlink(s.p("rm"))                         # a whiteout replaces it
    return sorted(os.listdir(s.p("e"))), sorted(os.listdir(s.mnt))


def test_rename_link_unlink_keep_finding_the_data(mc):
    mc.run(_namespace_ops)
    for s in mc.sides:
        assert read(s.p("e", "mv3")) == _blob(BIG, "mv")
        assert read(s.p("d", "moved")) == _blob(BIG, "mvdir")
        assert read(s.p("e", "link2")) == _blob(BIG, "link")
        assert os.getxattr(os.path.join(s.upper, "e", "mv3"), "trusted.overlay.redirect") \
            == b"/mv"
        assert _upper_bytes(s, "e/mv3") <= NO_DATA
    mc.check()
    mc.remount()
    mc.check()
    # Writing to a renamed metacopy file brings the right data up.
    for s in mc.sides:
        with open(s.p("e", "mv3"), "ab") as f:
            f.write(b"!")
        assert read(s.p("e", "mv3")) == _blob(BIG, "mv") + b"!"
    mc.check()


def _build_linked(l0):
    os.makedirs(os.path.join(l0, "a", "b"))
    os.makedirs(os.path.join(l0, "d"))
    with open(os.path.join(l0, "a", "b", "f"), "wb") as f:
        f.write(_blob(BIG, "f"))
    with open(os.path.join(l0, "hl"), "wb") as f:
        f.write(_blob(BIG, "hl"))
    os.link(os.path.join(l0, "hl"), os.path.join(l0, "d", "hl2"))


@pytest.mark.parametrize("then", ["rm", "rm-mkdir"])
def test_hard_linked_metacopy_moves_once_its_redirect_target_is_gone(harness, unionfs_bin, need_fuse,
                                                                      need_overlay, then):
    """ln a/b/f d/g makes g a second name of a metadata-only copy whose data is found
    through the absolute redirect /a/b/f; once a is removed (and made again) g still
    moves, links and reads its data, as on the kernel."""
    d = Diff(harness, 1, _build_linked, opts=MC)

    def ops(s):
        os.link(s.p("a", "b", "f"), s.p("d", "g"))
        shutil.rmtree(s.p("a"))
        if then == "rm-mkdir":
            os.mkdir(s.p("a"))
        r = [errno_of(os.rename, s.p("d", "g"), s.p("d", "h")),
             errno_of(os.link, s.p("d", "h"), s.p("i")),
             errno_of(os.rename, s.p("i"), s.p("d", "j")),
             os.stat(s.p("d", "h")).st_nlink, _sha(s.p("d", "j"))]
        return r

    assert d.run(ops)[:3] == [0, 0, 0]
    for s in d.sides:
        assert _sha(s.p("d", "h")) == hashlib.sha256(_blob(BIG, "f")).hexdigest()
        assert _upper_bytes(s, "d/h") <= NO_DATA, f"{s.name}: data copied up"
        assert os.getxattr(os.path.join(s.upper, "d", "h"), "trusted.overlay.redirect") \
            == b"/a/b/f"
    d.check()
    d.remount()
    d.check()


def test_metadata_change_of_a_hard_linked_lower_copies_no_data(harness, unionfs_bin, need_fuse,
                                                                need_overlay):
    """The kernel (index=off) copies no data for a lower file with other links either: the
    copy is metadata only, without an origin (its st_ino is the copy's own)."""
    d = Diff(harness, 1, _build_linked, opts=MC)
    os.sync()

    def ops(s):
        os.chmod(s.p("hl"), 0o600)
        os.chown(s.p("d", "hl2"), 1234, 5678)
        st = [os.stat(s.p(n)) for n in ("hl", "d/hl2")]
        return [(oct(x.st_mode), x.st_uid, x.st_nlink, x.st_size, x.st_blocks) for x in st]

    d.run(ops)
    for s in d.sides:
        for n in ("hl", "d/hl2"):
            up = os.path.join(s.upper, n)
            assert _upper_bytes(s, n) <= NO_DATA, f"{s.name}: {n} copied data up"
            assert _xattrs(up) == ["trusted.overlay.metacopy"], f"{s.name}: {n}"
            assert os.stat(s.p(n)).st_ino == os.stat(up).st_ino
        assert _sha(s.p("hl")) == hashlib.sha256(_blob(BIG, "hl")).hexdigest()

    def write(s):                                        # a write brings the data up
        with open(s.p("hl"), "ab") as f:
            f.write(b"!")
        return _sha(s.p("hl")), _sha(s.p("d", "hl2"))

    assert d.run(write) == (hashlib.sha256(_blob(BIG, "hl") + b"!").hexdigest(),
                            hashlib.sha256(_blob(BIG, "hl")).hexdigest())
    d.check()


def _mutate(m):
    _metadata_ops(type("S", (), {"p": lambda self, *a: os.path.join(m, *a)})())
    os.rename(os.path.join(m, "mv"), os.path.join(m, "e", "mv3"))
    os.link(os.path.join(m, "link"), os.path.join(m, "e", "link2"))
    os.chmod(os.path.join(m, "write"), 0o600)
    with open(os.path.join(m, "write"), "ab") as f:
        f.write(b"appended")


@pytest.mark.parametrize("writer,reader", [("veneer", "kernel"), ("kernel", "veneer")])
def test_metacopy_upper_read_by_the_other(harness, unionfs_bin, need_fuse, need_overlay,
                                          writer, reader):
    h = harness
    lower = h.mkdir("lower")
    _build(lower)
    ref = h.mount_overlay([lower], h.mkdir("ref-u"), h.mkdir("ref-w"), mnt=h.path("ref"),
                          opts=MC)
    _mutate(ref.path)
    want = snapshot(ref.path)
    h.umount(ref)

    def mount(kind, n):
        up, wk, mnt = h.mkdir("upper"), h.mkdir(f"work{n}"), h.path(f"m{n}")
        if kind == "kernel":
            return h.mount_overlay([lower], up, wk, mnt=mnt, opts=MC)
        return h.mount_unionfs([lower], up, wk, mnt=mnt, opts=MC)

    m = mount(writer, 1)
    _mutate(m.path)
    assert snapshot(m.path) == want
    assert h.umount(m) == 0
    assert os.stat(os.path.join(h.path("upper"), "chmod")).st_blocks * 512 <= NO_DATA
    m = mount(reader, 2)
    got = snapshot(m.path)
    diff = {p: (want.get(p), got.get(p)) for p in set(want) | set(got) if want.get(p) != got.get(p)}
    assert not diff, f"{reader} reading {writer}'s upper (want, got): {diff}"
    # The reader keeps the format going: a write brings the data up.
    with open(os.path.join(m.path, "e", "mv3"), "ab") as f:
        f.write(b"!")
    assert read(os.path.join(m.path, "e", "mv3")) == _blob(BIG, "mv") + b"!"
    assert h.umount(m) == 0


def test_metacopy_lower_layer_with_redirect(harness, unionfs_bin, need_fuse, need_overlay):
    """A lower that was itself a metacopy upper: its data is one layer further down,
    reached through its redirect."""
    h = harness
    data = h.mkdir("data")
    _build(data)
    mid = h.mkdir("mid")
    m = h.mount_overlay([data], mid, h.mkdir("w0"), mnt=h.path("m0"), opts=MC)
    os.chmod(os.path.join(m.path, "chmod"), 0o600)
    os.rename(os.path.join(m.path, "mv"), os.path.join(m.path, "e", "moved"))
    h.umount(m)
    assert os.getxattr(os.path.join(mid, "e", "moved"), "trusted.overlay.redirect") == b"/mv"

    snaps = {}
    for kind in ("kernel", "veneer"):
        up, wk, mnt = h.mkdir(kind, "u"), h.mkdir(kind, "w"), h.path(kind, "m")
        if kind == "kernel":
            m = h.mount_overlay([mid, data], up, wk, mnt=mnt, opts=MC)
        else:
            m = h.mount_unionfs([mid, data], up, wk, mnt=mnt, opts=MC)
        assert read(os.path.join(mnt, "e", "moved")) == _blob(BIG, "mv")
        os.chown(os.path.join(mnt, "e", "moved"), 7, 7)   # metacopy over a metacopy lower
        assert os.stat(os.path.join(up, "e", "moved")).st_blocks * 512 <= NO_DATA
        assert read(os.path.join(mnt, "e", "moved")) == _blob(BIG, "mv")
        with open(os.path.join(mnt, "chmod"), "ab") as f:   # data from two layers down
            f.write(b"x")
        assert read(os.path.join(mnt, "chmod")) == _blob(BIG, "chmod") + b"x"
        snaps[kind] = snapshot(mnt)
        h.umount(m)
    assert snaps["kernel"] == snaps["veneer"]
    # Read-only (no upper): the metacopy lower still reads through its redirect.
    for kind in ("kernel", "veneer"):
        mnt = h.path(kind, "ro")
        if kind == "kernel":
            m = h.mount_overlay([mid, data], mnt=mnt, opts=MC)
        else:
            m = h.mount_unionfs([mid, data], mnt=mnt, opts=MC)
        assert read(os.path.join(mnt, "e", "moved")) == _blob(BIG, "mv")
        assert os.stat(os.path.join(mnt, "chmod")).st_mode & 0o777 == 0o600
        snaps[kind + "-ro"] = snapshot(mnt)
        h.umount(m)
    assert snaps["kernel-ro"] == snaps["veneer-ro"]


def test_missing_lower_data_and_metacopy_off(harness, unionfs_bin, need_fuse, need_overlay):
    """A metacopy upper without its data is EIO; metacopy=off refuses to follow one
    (EPERM), as the kernel does."""
    h = harness
    lower = h.mkdir("lower")
    _build(lower)
    up = h.mkdir("upper")
    m = h.mount_overlay([lower], up, h.mkdir("w0"), mnt=h.path("m0"), opts=MC)
    os.chmod(os.path.join(m.path, "chmod"), 0o600)
    os.chmod(os.path.join(m.path, "chown"), 0o600)
    h.umount(m)
    os.unlink(os.path.join(lower, "chown"))

    def errs(path):
        return [errno_of_stat(os.path.join(path, n)) for n in ("chmod", "chown", "small")]

    results = {}
    for opts in (MC, ("metacopy=off",), ()):
        for kind in ("kernel", "veneer"):
            wk, mnt = h.mkdir(f"w-{kind}-{len(results)}"), h.path(f"m-{kind}-{len(results)}")
            if kind == "kernel":
                m = h.mount_overlay([lower], up, wk, mnt=mnt, opts=opts)
            else:
                m = h.mount_unionfs([lower], up, wk, mnt=mnt, opts=opts)
            results[(opts, kind)] = errs(mnt)
            h.umount(m)
        assert results[(opts, "kernel")] == results[(opts, "veneer")], (opts, results)
    assert results[(MC, "veneer")] == [0, errno.EIO, 0]
    assert results[((), "veneer")][0] == errno.EPERM


def errno_of_stat(path):
    try:
        os.stat(path)
        return 0
    except OSError as e:
        return e.errno


def test_metacopy_off_copies_data_as_before(harness, unionfs_bin, need_fuse, need_overlay):
    d = Diff(harness, 1, _build)
    d.run(lambda s: os.chmod(s.p("chmod"), 0o600))
    for s in d.sides:
        assert _upper_bytes(s, "chmod") >= BIG
        assert "trusted.overlay.metacopy" not in _xattrs(os.path.join(s.upper, "chmod"))
    d.check()


def _kill_mid_copy(h, lower, up, wk, mnt, name):
    """Mount, chmod name (metacopy), append to it and SIGKILL the daemon once the data
    copy has started. True when the kill came before the copy was done."""
    m = h.mount_unionfs([lower], up, wk, mnt=mnt, opts=MC)
    os.chmod(os.path.join(mnt, name), 0o600)
    upath = os.path.join(up, name)
    assert os.stat(upath).st_blocks * 512 <= NO_DATA
    writer = subprocess.Popen(["sh", "-c", f"printf tail >> '{mnt}/{name}'"],
                              stderr=subprocess.DEVNULL)
    # Kill once the data copy has started (blocks show up in the upper file).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and writer.poll() is None:
        if os.stat(upath).st_blocks * 512 > NO_DATA:
            break
    m.daemon.stop(signal.SIGKILL)
    writer.wait(10)
    lazy_umount(mnt)
    return "trusted.overlay.metacopy" in _xattrs(upath)


def test_kill_during_data_copy_up_leaves_a_consistent_file(harness, unionfs_bin, need_fuse,
                                                           need_overlay):
    """SIGKILL while a metacopy file gets its data: the marker goes only after the
    data, so the file still reads as its lower (veneer and kernel agree), the lower
    is intact, and the next write completes the copy."""
    h = harness
    lower = h.mkdir("lower")
    size = 384 * MIB
    up, wk, mnt = h.mkdir("u"), h.mkdir("w"), h.path("m")
    # The kill races the copy: on a busy machine the copy may win; try a fresh file then.
    for attempt in range(4):
        name = f"big{attempt}"
        with open(os.path.join(lower, name), "wb") as f:
            for i in range(size // MIB):
                f.write(_blob(MIB, f"big{i % 7}"))
        want = _sha(os.path.join(lower, name))
        lstate = _lower_state(os.path.join(lower, name))
        if _kill_mid_copy(h, lower, up, wk, mnt, name):
            break
    else:
        pytest.fail("the data copy-up always finished before the kill")
    upath = os.path.join(up, name)

    k = h.mount_overlay([lower], up, h.mkdir("wk"), mnt=h.path("k"), opts=MC)
    assert _sha(os.path.join(k.path, name)) == want
    h.umount(k)
    m = h.mount_unionfs([lower], up, wk, mnt=mnt, opts=MC)
    assert os.stat(os.path.join(mnt, name)).st_size == size
    assert _sha(os.path.join(mnt, name)) == want
    with open(os.path.join(mnt, name), "ab") as f:
        f.write(b"tail")
    with open(os.path.join(lower, name), "rb") as f:
        f.seek(size - 4)
        lower_tail = f.read()
    with open(os.path.join(mnt, name), "rb") as f:
        f.seek(size - 4)
        assert f.read() == lower_tail + b"tail"
    assert "trusted.overlay.metacopy" not in _xattrs(upath)
    assert h.umount(m) == 0
    assert _lower_state(os.path.join(lower, name)) == lstate
    for d in (lower, up):  # pytest keeps old tmp dirs: free the space
        for n in os.listdir(d):
            if n.startswith("big"):
                os.unlink(os.path.join(d, n))


def test_bad_metacopy_value_is_refused(harness, unionfs_bin, need_fuse):
    h = harness
    lower, up, wk, mnt = h.mkdir("l"), h.mkdir("u"), h.mkdir("w"), h.mkdir("m")
    r = subprocess.run([unionfs_bin, "-o", f"lowerdir={lower},upperdir={up},workdir={wk},"
                        "metacopy=yes", mnt], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "metacopy='yes'" in r.stderr
    assert os.listdir(wk) == []


def _mc_op(rnd, s, seed):
    """One random step of the semantics suite, except renames involving a directory:
    with metacopy=on the kernel turns on redirect_dir and renames lower directories,
    which veneer still refuses (EXDEV)."""
    import test_unionfs_semantics_random as sr
    peek = random.Random()
    peek.setstate(rnd.getstate())
    n, m, op = peek.choice(sr.NAMES), peek.choice(sr.NAMES), peek.randrange(24 + len(sr.EXTRA_OPS))
    if op in (6, 7, 8) and any(os.path.isdir(s.p(*x.split("/"))) for x in (n, m)):
        rnd.choice(sr.NAMES), rnd.choice(sr.NAMES), rnd.randrange(24 + len(sr.EXTRA_OPS))
        return ("dir rename skipped",)
    return sr.one_op(rnd, s, seed)


def _mc_link_op(rnd, s):
    """A hard link of a lower file, then the path its redirect names goes away (the
    file, then its directory, maybe made again) and the new name moves and is read."""
    import test_unionfs_semantics_random as sr
    p = lambda n: s.p(*n.split("/"))  # noqa: E731
    src = rnd.choice(("d1/x", "d1/sub/q", "d2/z", "d2/x", "c/in"))
    dst, to = rnd.choice(sr.NAMES), rnd.choice(sr.NAMES)
    again = rnd.random() < 0.5
    parent = os.path.dirname(src)
    r = [sr.result(os.link, p(src), p(dst)), sr.result(os.unlink, p(src)),
         sr.result(os.rmdir, p(parent))]
    if again:
        r.append(sr.result(os.mkdir, p(parent)))
    if any(os.path.isdir(p(x)) for x in (dst, to)):
        r.append("dir rename skipped")  # the kernel renames lower dirs (see _mc_op)
    else:
        r.append(sr.result(os.rename, p(dst), p(to)))
    r.append(sr.result(_read_nonblock, p(to)))
    return tuple(r)


def _read_nonblock(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a fifo must not block
    try:
        return os.read(fd, 100)
    finally:
        os.close(fd)


@pytest.mark.parametrize("seed", range(int(os.environ.get("VENEER_UNIONFS_MC_SEEDS", "6"))))
def test_random_operations_match_the_kernel_with_metacopy(harness, unionfs_bin, need_fuse,
                                                          need_overlay, seed):
    import test_unionfs_semantics_random as sr
    sr.let_others_in(harness)  # its steps as other users
    d = Diff(harness, 3, sr.layers, opts=MC)
    t0 = time.time_ns()
    for s in d.sides:
        s.fds, s.rofds, s.t0 = {}, {}, t0
    time.sleep(0.05)
    rnds = {s.name: random.Random(seed + 1000) for s in d.sides}
    for step in range(250):
        linked = [rnds[x].random() < 0.05 for x in ("k", "v")][0]
        peek = random.Random()
        peek.setstate(rnds["k"].getstate())
        desc = (peek.choice(sr.NAMES), peek.choice(sr.NAMES),
                peek.randrange(24 + len(sr.EXTRA_OPS)))
        if linked:
            desc = ("link, then its source goes",)
            rk, rv = _mc_link_op(rnds["k"], d.k), _mc_link_op(rnds["v"], d.v)
        else:
            rk = _mc_op(rnds["k"], d.k, seed)
            rv = _mc_op(rnds["v"], d.v, seed)
        if os.environ.get("VENEER_UNIONFS_TRACE"):
            print(step, desc, rk)
        assert rk == rv, f"step {step} {desc}: kernel {rk} != veneer {rv}"
        if step % 50 == 49:
            d.run(lambda s: sr.lstat_view(s, t0))
    for s in d.sides:
        for fd in list(s.fds.values()) + list(s.rofds.values()):
            os.close(fd)
    d.check()
    d.remount()
    d.run(lambda s: sr.lstat_view(s, t0))
    d.check()
    d.check_inodes_across()
