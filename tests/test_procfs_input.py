# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-procfs's command line, option by option: a bad value of any option gives one line
on stderr naming the option and the value, exits with the man page's usage code (2) and
leaves nothing behind (no mount, no holder or worker, nothing in the mount point).
--help and the man page list every option and agree on the exit codes."""
import os
import re
import subprocess

import pytest

from veneer_harness import REPO, lazy_umount, mounted_at, pids_mentioning, require, sanitizer_env

EXIT_USAGE = 2

# Every option veneer-procfs takes; --help and the man page name each.
OPTIONS = ["cgroup_root", "cpu_quota", "threads", "respawn_delay", "-f", "-d", "--debug", "-s",
           "--ready-fd", "clone_fd", "max_idle_threads", "max_threads", "uring",
           "uring_threads", "-h", "--help", "-V", "--version"]


@pytest.fixture
def env(harness, need_fuse, procfs_bin):
    require(os.access(procfs_bin, os.X_OK), f"{procfs_bin} is not built")
    root = harness.mkdir("in")
    os.makedirs(os.path.join(root, "mnt"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "file"), "w") as f:
        f.write("not a dir\n")
    return root


def _refused(binary, argv, mnt, words, watch):
    """Run with bad input: exit 2, one stderr line naming every word, nothing left."""
    before = {d: sorted(os.listdir(d)) for d in watch}
    full = [binary, "-f", *argv]
    try:
        r = subprocess.run(full, capture_output=True, text=True, timeout=15,
                           env=sanitizer_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        lazy_umount(mnt)
        pytest.fail(f"{full} did not refuse the input: it kept running")
    if mounted_at(mnt):
        lazy_umount(mnt)
        pytest.fail(f"{full} mounted although the input is bad")
    left = pids_mentioning(mnt)
    assert not left, f"processes left behind: {left}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == EXIT_USAGE, f"{full}: exit {r.returncode}, stderr: {r.stderr}"
    assert len(lines) == 1, f"{full}: want one line, got {r.stderr!r}"
    for w in words:
        assert w in lines[0], f"{full}: the message does not name {w!r}: {lines[0]!r}"
    assert r.stdout == ""
    assert {d: sorted(os.listdir(d)) for d in watch} == before, "a refused start created files"
    return lines[0]


def _o(opt):
    name, _, value = opt.partition("=")
    return (["-o", opt], [name, value] if value else [name])


# (argv before the mount point, words the message must hold); {root} is the test's dir.
CASES = {
    "cgroup_root-relative": _o("cgroup_root=relative/dir"),
    "cgroup_root-missing": _o("cgroup_root={root}/nope"),
    "cgroup_root-file": _o("cgroup_root={root}/file"),
    "cgroup_root-no-hierarchy": _o("cgroup_root={root}/empty"),
    "cpu_quota-2": _o("cpu_quota=2"),
    "cpu_quota-word": _o("cpu_quota=yes"),
    "threads-0": _o("threads=0"),
    "threads-65": _o("threads=65"),
    "threads-negative": _o("threads=-1"),
    "threads-wraps": _o("threads=4294967297"),
    "threads-empty": (["-o", "threads="], ["threads="]),
    "respawn_delay-negative": _o("respawn_delay=-1"),
    "respawn_delay-too-big": _o("respawn_delay=3600001"),
    "respawn_delay-word": _o("respawn_delay=soon"),
    "ready-fd-word": (["--ready-fd=x"], ["--ready-fd", "x"]),
    "ready-fd-negative": (["--ready-fd=-2"], ["--ready-fd", "-2"]),
    "clone_fd-value": _o("clone_fd=1"),
    "max_idle_threads-negative": _o("max_idle_threads=-3"),
    "max_threads-0": _o("max_threads=0"),
    "max_threads-word": _o("max_threads=many"),
    "uring-word": _o("uring=maybe"),
    "uring_threads-0": _o("uring_threads=0"),
    "uring_threads-65": _o("uring_threads=65"),
    "unknown-o": _o("bogus_option"),
    "unknown-mount-option": _o("allow_other"),
    "unknown-long-flag": (["--frob"], ["--frob"]),
    "unknown-short-flag": (["-x"], ["'-x'"]),
    "debug-value": (["--debug=yes"], ["--debug=yes"]),
    "help-value": (["--help=all"], ["--help=all"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_value_is_refused(env, procfs_bin, case):
    argv, words = CASES[case]
    argv = [a.replace("{root}", env) for a in argv]
    words = [w.replace("{root}", env) for w in words]
    mnt = os.path.join(env, "mnt")
    line = _refused(procfs_bin, [*argv, mnt], mnt, words,
                    [env, mnt, os.path.join(env, "empty")])
    if case == "respawn_delay-negative":
        # It is the lower bound that -1 misses (the message used to give the upper one).
        assert "at most" not in line and re.search(r"\b0\b", line), line


@pytest.mark.parametrize("case", ["file", "missing", "second-argument"])
def test_bad_mount_point_is_refused(env, procfs_bin, case):
    mnt = os.path.join(env, "mnt")
    if case == "file":
        bad = os.path.join(env, "file")
        argv, words = [bad], ["mount point", bad]
    elif case == "missing":
        bad = os.path.join(env, "nope", "mnt")
        argv, words = [bad], ["mount point", bad]
    else:
        argv, words = [mnt, "extra-arg"], ["extra-arg"]
    _refused(procfs_bin, argv, argv[0], words, [env, mnt])
    with open(os.path.join(env, "file")) as f:
        assert f.read() == "not a dir\n"


def _man_text():
    page = os.path.join(REPO, "man", "veneer-procfs.1")
    with open(page) as f:
        return f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "") \
            .replace("\\fI", "")


def test_help_and_man_page_name_every_option(procfs_bin):
    r = subprocess.run([procfs_bin, "--help"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = _man_text()
    for o in OPTIONS:
        pat = r"(?<![\w-])" + re.escape(o) + r"(?![\w-])"
        assert re.search(pat, r.stdout), f"--help does not mention {o}"
        assert re.search(pat, text), f"the man page does not mention {o}"
    # The ranges --help gives are the ones the man page gives and the code checks.
    for o, rng in (("threads", "1 to 64"), ("respawn_delay", "3600000"),
                   ("uring_threads", "1 to 64"), ("max_threads", "100000")):
        assert rng in text, f"the man page gives no range {rng!r} for {o}"


def test_man_page_exit_codes_match(env, procfs_bin):
    """The man page promises 2 for bad input, including a mount point that is no directory."""
    text = re.sub(r"\s+", " ", _man_text())
    section = text.split("EXIT STATUS", 1)[1].split(".SH", 1)[0]
    assert "2 on a bad command line or bad input" in section
    assert "not a directory" in section
    r = subprocess.run([procfs_bin, "-f", os.path.join(env, "file")], capture_output=True,
                       text=True, timeout=15, env=sanitizer_env())
    assert r.returncode == 2, r.stderr
