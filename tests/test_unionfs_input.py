# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs's command line, option by option (issue 11): a bad value of any option
gives one line on stderr naming the option and the value, exits with the man page's usage
code (2) and creates nothing: no mount, no daemon left, and the layers, upper and work
directories exactly as they were (no work/work either). test_unionfs_params.py has the bad
layer combinations; this file has one bad value per option and the flags libfuse parses."""
import os
import re
import subprocess

import pytest

from test_unionfs_params import _state
from veneer_harness import REPO, lazy_umount, mounted_at, pids_mentioning, sanitizer_env

EXIT_USAGE = 2


@pytest.fixture
def fs(harness, unionfs_bin, need_fuse):
    root = harness.mkdir("fs")
    for d in ("l1", "u", "w", "mnt"):
        os.makedirs(os.path.join(root, d))
    with open(os.path.join(root, "l1", "f"), "w") as f:
        f.write("l1\n")
    with open(os.path.join(root, "file"), "w") as f:
        f.write("not a dir\n")
    return root


def _layers(root):
    return "lowerdir={0}/l1,upperdir={0}/u,workdir={0}/w".format(root)


def _refused(binary, root, argv, mnt, words):
    before = _state(root)
    full = [binary, "-f", *argv]
    try:
        r = subprocess.run(full, capture_output=True, text=True, timeout=15,
                           env=sanitizer_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        lazy_umount(mnt)
        pytest.fail(f"{full} did not refuse the input: it mounted and kept running")
    if mounted_at(mnt):
        lazy_umount(mnt)
        pytest.fail(f"{full} mounted although the input is bad")
    assert not pids_mentioning(mnt), "a daemon was left behind"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == EXIT_USAGE, f"{full}: exit {r.returncode}, stderr: {r.stderr}"
    assert len(lines) == 1, f"{full}: want one line, got {r.stderr!r}"
    for w in words:
        assert w in lines[0], f"{full}: the message does not name {w!r}: {lines[0]!r}"
    assert r.stdout == ""
    assert _state(root) == before, "a refused mount changed the disk"
    assert os.listdir(os.path.join(root, "w")) == [], "the workdir was prepared"
    return lines[0]


# -o options with a bad value: (option text, words the message must hold).
BAD_O = [
    ("lowerdir=", ["lowerdir"]),
    ("volatile=1", ["volatile=1"]),
    ("fsync=2", ["fsync", "2"]),
    ("ro=yes", ["ro=yes"]),
    ("rw=1", ["rw=1"]),
    ("noatime=0", ["noatime=0"]),
    ("allow_other=1", ["allow_other=1"]),
    ("default_permissions=0", ["default_permissions=0"]),
    ("nosuid=1", ["nosuid=1"]),
    ("timeout=soon", ["timeout", "soon"]),
    ("timeout=-1", ["timeout", "-1"]),
    ("fd_cache=1", ["fd_cache", "1"]),
    ("node_budget=5", ["node_budget", "5"]),
    ("passthrough=yes", ["passthrough", "yes"]),
    ("metacopy=maybe", ["metacopy", "maybe"]),
    ("redirect_dir=maybe", ["redirect_dir", "maybe"]),
    ("noacl=1", ["noacl=1"]),
    ("uidmapping=0:x:10", ["uidmapping", "0:x:10"]),
    ("gidmapping=1:2", ["gidmapping", "1:2"]),
    ("uidmapping=:0:1", ["uidmapping", ":0:1"]),
    ("gidmapping=::", ["gidmapping", "::"]),
    ("squash_to_root=1", ["squash_to_root=1"]),
    ("squash_to_uid=x", ["squash_to_uid", "x"]),
    ("squash_to_gid=-1", ["squash_to_gid", "-1"]),
    ("static_nlink=1", ["static_nlink=1"]),
    ("xattr_permissions=3", ["xattr_permissions", "3"]),
    ("subtype=", ["subtype"]),
    ("max_read=x", ["max_read", "x"]),
    ("max_read=0", ["max_read", "0"]),
    ("clone_fd=1", ["clone_fd=1"]),
    ("max_idle_threads=-3", ["max_idle_threads", "-3"]),
    ("max_threads=0", ["max_threads", "0"]),
    ("max_threads=many", ["max_threads", "many"]),
    ("uring=maybe", ["uring", "maybe"]),
    ("index=maybe", ["index", "maybe"]),
    ("uring_threads=0", ["uring_threads", "0"]),
    ("uring_threads=65", ["uring_threads", "65"]),
    ("bogus_opt=3", ["bogus_opt"]),
    ("bogus1,bogus2", ["bogus1"]),
]


@pytest.mark.parametrize("opt,words", BAD_O, ids=[o for o, _ in BAD_O])
def test_bad_o_value_is_refused(fs, unionfs_bin, opt, words):
    mnt = os.path.join(fs, "mnt")
    _refused(unionfs_bin, fs, ["-o", _layers(fs) + "," + opt, mnt], mnt, words)


# Flags: libfuse's own messages used to come out in pieces (--frob on two lines).
BAD_FLAGS = [
    (["--frob"], ["--frob"]),
    (["-x"], ["'-x'"]),
    (["--debug=yes"], ["--debug=yes"]),
    (["--ready-fd=x"], ["--ready-fd", "x"]),
    (["--ready-fd=-2"], ["--ready-fd", "-2"]),
    (["--version=1"], ["--version=1"]),
]


@pytest.mark.parametrize("flags,words", BAD_FLAGS, ids=[f[0] for f, _ in BAD_FLAGS])
def test_bad_flag_is_refused(fs, unionfs_bin, flags, words):
    mnt = os.path.join(fs, "mnt")
    line = _refused(unionfs_bin, fs, ["-o", _layers(fs), *flags, mnt], mnt, words)
    assert "fuse:" not in line, f"libfuse's message, not ours: {line!r}"


@pytest.mark.parametrize("case", ["file", "missing", "second-argument"])
def test_bad_mount_point_is_refused(fs, unionfs_bin, case):
    if case == "file":
        mnt = os.path.join(fs, "file")
        argv, words = [mnt], [mnt]
    elif case == "missing":
        mnt = os.path.join(fs, "nope")
        argv, words = [mnt], [mnt]
    else:
        mnt = os.path.join(fs, "mnt")
        argv, words = [mnt, "extra-arg"], ["extra-arg"]
    _refused(unionfs_bin, fs, ["-o", _layers(fs), *argv], mnt, words)


def test_man_page_exit_codes_and_ranges():
    with open(os.path.join(REPO, "man", "veneer-unionfs.1")) as f:
        text = re.sub(r"\s+", " ", f.read().replace("\\-", "-"))
    section = text.split("EXIT STATUS", 1)[1].split(".SH", 1)[0]
    assert "an unknown option" in section and "a value out of range" in section
    assert "mount point that is not a directory" in section
    for rng in ("1 to 100000", "1 to 64"):
        assert rng in text
