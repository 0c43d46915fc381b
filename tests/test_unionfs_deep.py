# SPDX-License-Identifier: GPL-2.0-or-later
"""Deep lower stacks (>= 8 lowers, where veneer-unionfs answers lookups from a
per-directory name index instead of asking every layer): the semantics scenarios
and seeded random sequences again with their layers spread over a 12-deep stack
between filler layers, against the kernel's overlayfs; and the index's effect,
counted (layers asked per lookup), not timed."""
import os

import pytest

import test_unionfs_semantics as sem
import test_unionfs_semantics_random as rnd
from unionfs_diff import Diff, errnos, listing, read, whiteout, write

DEPTH = 12


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin, harness):
    rnd.let_others_in(harness)


def spread(build, n):
    """A build of DEPTH lowers: build's n layers at evenly spaced places, the others
    filler: names of their own, directories that merge with build's, whiteouts of the
    next filler's names, an opaque filler directory (OCI .wh. files: their own test)."""
    at = [round(i * (DEPTH - 1) / max(n - 1, 1)) for i in range(n)]

    def deep(*ls):
        build(*[ls[i] for i in at])
        for k, l in enumerate(ls):
            if k in at:
                continue
            write(f"{l}/filler{k}", f"filler {k}")
            for d in ("d", "d1", "dir"):
                os.makedirs(f"{l}/{d}", exist_ok=True)
                write(f"{l}/{d}/g{k}", f"g {k}")
            os.makedirs(f"{l}/fdir/in{k}")
            # layer k + 1 lies below k: these hide its filler names
            if k + 1 < DEPTH and k + 1 not in at:
                whiteout(f"{l}/filler{k + 1}")
                whiteout(f"{l}/d/g{k + 1}")
        if DEPTH - 2 not in at:
            os.makedirs(f"{ls[DEPTH - 2]}/fdir", exist_ok=True)
            os.setxattr(f"{ls[DEPTH - 2]}/fdir", "trusted.overlay.opaque", b"y")

    return deep, at


def stats(mnt):
    raw = os.getxattr(mnt, "trusted.veneer.nodes").decode()
    return {k: int(v) for k, v in (f.split("=") for f in raw.split())}


def test_deep_lookup_precedence(harness):
    deep, _ = spread(sem.three_layers, 3)
    d = Diff(harness, DEPTH, deep)
    snap = d.check()
    assert read(d.v.p("top")) == b"l0"
    assert "fileoverdir/hidden" not in snap and "diroverfile/below" not in snap
    d.run(lambda s: errnos((os.stat, s.p("fileoverdir", "hidden")), (os.stat, s.p("nothere")),
                           (os.stat, s.p("filler1")), (os.stat, s.p("d", "g1")),
                           (os.stat, s.p("d", "g3"))))
    d.run(lambda s: [listing(s.p(x)) for x in ("", "d", "fdir", "d/sub")])
    # Removals need a whiteout only where a lower still shows the name.
    d.run(lambda s: errnos((os.unlink, s.p("d", "g4")), (os.unlink, s.p("filler8")),
                           (os.unlink, s.p("bottom")), (os.rmdir, s.p("fdir", "in9"))))
    d.run(lambda s: (write(s.p("d", "g4"), "new"), os.mkdir(s.p("fdir", "in9")),
                     listing(s.p("fdir"))))
    d.check()
    d.remount()
    d.check()


def test_deep_whiteouts_and_opaque_dirs(harness):
    deep, _ = spread(sem.whiteout_layers, 3)
    d = Diff(harness, DEPTH, deep)
    snap = d.check()
    assert "a" not in snap and "dir/inner" not in snap and "dir/keep" in snap
    assert "xw/gone" not in snap and "xw/stays" in snap
    d.run(lambda s: errnos((os.stat, s.p("a")), (os.stat, s.p("dir", "inner")),
                           (os.stat, s.p("xw", "gone")), (os.stat, s.p("opq", "theirs"))))
    d.run(lambda s: [listing(s.p(x)) for x in ("", "xw", "opq", "dir")])


def test_deep_oci_whiteouts_hide_names_below(harness):
    """OCI .wh. files in a deep stack (veneer) read as their kernel-format conversion."""
    def oci(*ls):
        for k, l in enumerate(ls):
            write(f"{l}/n{k}", str(k))
            os.makedirs(f"{l}/d/sub{k}")
            write(f"{l}/d/f{k}", str(k))
        for k in range(1, DEPTH, 3):  # layer k hides the names of layer k + 1
            write(f"{ls[k]}/.wh.n{k + 1}", "")
            write(f"{ls[k]}/d/.wh.sub{k + 1}", "")
            write(f"{ls[k]}/d/.wh.f{k + 1}", "")
        os.makedirs(f"{ls[5]}/o")
        write(f"{ls[5]}/o/.wh..wh..opq", "")
        write(f"{ls[5]}/o/new", "n")
        write(f"{ls[9]}/o/old", "o") if os.path.isdir(f"{ls[9]}/o") else None
        os.makedirs(f"{ls[9]}/o", exist_ok=True)
        write(f"{ls[9]}/o/old", "o")

    def converted(*ls):
        oci(*ls)
        for k in range(1, DEPTH, 3):
            for p in (f"{ls[k]}/.wh.n{k + 1}", f"{ls[k]}/d/.wh.sub{k + 1}",
                      f"{ls[k]}/d/.wh.f{k + 1}"):
                os.unlink(p)
                whiteout(p.replace(".wh.", ""))
        os.unlink(f"{ls[5]}/o/.wh..wh..opq")
        os.setxattr(f"{ls[5]}/o", "trusted.overlay.opaque", b"y")

    names = [f"l{i}" for i in range(DEPTH)]
    proto_v = harness.mkdir("proto-oci")
    for n in names:
        os.makedirs(os.path.join(proto_v, n))
    oci(*[os.path.join(proto_v, n) for n in names])
    d = Diff(harness, DEPTH, converted, proto_v=proto_v)
    snap = d.check(upper=False)
    assert "n2" not in snap and "d/sub5" not in snap and "n3" in snap
    assert sorted(os.listdir(d.v.p("o"))) == ["new"]
    d.run(lambda s: errnos(*[(os.stat, s.p(f"n{k}")) for k in range(DEPTH)],
                           *[(os.stat, s.p("d", f"f{k}")) for k in range(DEPTH)]))
    d.run(lambda s: (write(s.p("n2"), "again"), os.mkdir(s.p("d", "sub5")),
                     os.unlink(s.p("d", "f3")), sorted(os.listdir(s.p("d")))))
    d.check(upper=False)


@pytest.mark.parametrize("seed", range(4))
def test_deep_random_operations_match_the_kernel(harness, seed, monkeypatch):
    deep, _ = spread(rnd.layers, 3)
    monkeypatch.setattr(rnd, "Diff", lambda h, n, build, **kw: Diff(h, DEPTH, deep, **kw))
    rnd.run_random(harness, seed)


def test_deep_lookup_asks_only_the_layers_holding_the_name(harness):
    """100 names, each in one of 12 lowers: a cold stat of each asks the upper and the
    one lower that holds it (a name nowhere: the upper only), not all 12."""
    def build(*ls):
        for l in ls:
            os.makedirs(f"{l}/d")
        for i in range(100):
            write(f"{ls[i % DEPTH]}/d/n{i:03d}", str(i))

    d = Diff(harness, DEPTH, build)
    mnt = d.v.mnt
    os.stat(os.path.join(mnt, "d"))  # d itself looked up; nothing in it yet
    before = stats(mnt)
    for i in range(100):
        os.stat(os.path.join(mnt, "d", f"n{i:03d}"))
    for i in range(100):
        with pytest.raises(FileNotFoundError):
            os.stat(os.path.join(mnt, "d", f"none{i}"))
    after = stats(mnt)
    probes = after["probes"] - before["probes"]
    # 100 x (upper + the one lower) + 100 x the upper alone.
    assert after["indexed"] - before["indexed"] >= 1
    assert probes <= 100 * 2 + 100, f"{probes} layer probes for 200 lookups"
    d.run(lambda s: listing(s.p("d")))
    d.check()
