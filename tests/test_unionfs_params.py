# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs's command line: bad input is refused, podman's options work.

Each bad option or bad layer must give one message naming the bad input, exit
with the usage code (2), and leave every directory exactly as it was (names,
types, modes, contents, xattrs and times). The options podman and
fuse-overlayfs pass must mount; --help and the man page list every option.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from veneer_harness import REPO, lazy_umount, mounted_at, require, sanitizer_env, snapshot

EXIT_USAGE = 2

# Every option the command line accepts; --help and the man page list each.
OPTIONS = ["lowerdir", "upperdir", "workdir", "volatile", "fsync", "ro", "rw", "noatime",
           "allow_other", "default_permissions", "context", "-f", "-d", "--ready-fd",
           "--help", "--version", "passthrough", "metacopy", "noacl",
           "uring", "uring_threads"]
# issue 15 part A: the owner options podman passes to a mount_program
OPTIONS += ["uidmapping", "gidmapping", "squash_to_root", "squash_to_uid", "squash_to_gid",
            "static_nlink", "xattr_permissions"]
# issue 15 part C: xino, layer export
OPTIONS += ["xino", "--export-layer", "--output", "index"]


def _state(root):
    """Everything about a tree that a refused mount must not change."""
    snap = snapshot(root)
    times = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in [".", *dirnames, *filenames]:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            times[os.path.relpath(p, root)] = (st.st_mtime_ns, st.st_ctime_ns)
    return snap, times


@pytest.fixture
def fs(harness, unionfs_bin, need_fuse):
    """lower l1 (with a sub dir), lower l2, upper u, work w, mount point mnt, a file."""
    root = harness.mkdir("fs")
    for d in ("l1/sub", "l2", "u", "w", "mnt"):
        os.makedirs(os.path.join(root, d))
    with open(os.path.join(root, "l1", "from-l1"), "w") as f:
        f.write("l1\n")
    with open(os.path.join(root, "l2", "from-l2"), "w") as f:
        f.write("l2\n")
    with open(os.path.join(root, "file"), "w") as f:
        f.write("not a dir\n")
    return root


def _refused(harness, binary, root, opts, mnt, bad):
    """Run with bad input: must exit 2 with one line naming `bad`, change nothing."""
    before = _state(root)
    argv = [binary, "-f", "-o", opts, mnt]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                           env=sanitizer_env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        lazy_umount(mnt)
        pytest.fail(f"{argv} did not refuse the input: it mounted and kept running")
    if mounted_at(mnt):
        lazy_umount(mnt)
        pytest.fail(f"{argv} mounted although the input is bad")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == EXIT_USAGE, f"exit {r.returncode}, stderr: {r.stderr}"
    assert len(lines) == 1, f"want one message, got: {r.stderr!r}"
    assert bad in lines[0], f"the message does not name {bad!r}: {lines[0]!r}"
    assert r.stdout == ""
    after = _state(root)
    assert before == after, "a refused mount changed the disk"
    return lines[0]


def _o(root, lower=("l1",), upper="u", work="w", extra=()):
    o = ["lowerdir=" + ":".join(os.path.join(root, x) for x in lower)]
    if upper:
        o.append("upperdir=" + os.path.join(root, upper))
    if work:
        o.append("workdir=" + os.path.join(root, work))
    return ",".join(o + list(extra))


@pytest.mark.parametrize("case", [
    "missing-lower", "lower-is-file", "missing-upper", "upper-is-file", "missing-work",
    "upper-is-lower", "upper-inside-lower", "upper-is-work", "upper-inside-work",
    "no-lowerdir", "upper-without-work", "unknown-option", "unknown-flag-option",
    "missing-mountpoint", "mountpoint-is-file", "empty-lower", "bad-fsync", "bad-fd-cache",
    "bad-timeout", "bad-passthrough",
    "bad-uidmapping", "uidmapping-short", "gidmapping-overlap", "bad-squash-uid",
    "bad-xattr-permissions",
    "bad-xino",
])
def test_bad_input_is_refused(harness, unionfs_bin, fs, case):
    mnt = os.path.join(fs, "mnt")
    j = lambda *p: os.path.join(fs, *p)  # noqa: E731
    table = {
        "missing-lower": (_o(fs, lower=("l1", "nope")), j("nope")),
        "lower-is-file": (_o(fs, lower=("file", "l1")), j("file")),
        "missing-upper": (_o(fs, upper="nope"), j("nope")),
        "upper-is-file": (_o(fs, upper="file"), j("file")),
        "missing-work": (_o(fs, work="nope"), j("nope")),
        "upper-is-lower": (_o(fs, lower=("l2", "l1"), upper="l1"), j("l1")),
        "upper-inside-lower": (_o(fs, lower=("l1",), upper="l1/sub"), j("l1/sub")),
        "upper-is-work": (_o(fs, upper="w", work="w"), j("w")),
        "upper-inside-work": (None, j("w/u2")),
        "no-lowerdir": ("upperdir=" + j("u") + ",workdir=" + j("w"), "lowerdir"),
        "upper-without-work": (_o(fs, work=None), "workdir"),
        "unknown-option": (_o(fs, extra=["bogus_opt=3"]), "bogus_opt"),
        "unknown-flag-option": (_o(fs, extra=["nosuchflag"]), "nosuchflag"),
        "missing-mountpoint": (_o(fs), j("nomnt")),
        "mountpoint-is-file": (_o(fs), j("file")),
        "empty-lower": ("lowerdir=" + j("l1") + "::" + j("l2"), "lowerdir"),
        "bad-fsync": (_o(fs, extra=["fsync=2"]), "fsync"),
        "bad-fd-cache": (_o(fs, extra=["fd_cache=1"]), "fd_cache"),
        "bad-timeout": (_o(fs, extra=["timeout=soon"]), "timeout"),
        "bad-passthrough": (_o(fs, extra=["passthrough=yes"]), "passthrough"),
        "bad-uidmapping": (_o(fs, extra=["uidmapping=0:x:10"]), "uidmapping='0:x:10'"),
        "uidmapping-short": (_o(fs, extra=["uidmapping=0:100"]), "uidmapping='0:100'"),
        "gidmapping-overlap": (_o(fs, extra=["gidmapping=0:100:10:5:200:10"]), "overlap"),
        "bad-squash-uid": (_o(fs, extra=["squash_to_uid=-3"]), "squash_to_uid"),
        "bad-xattr-permissions": (_o(fs, extra=["xattr_permissions=3"]), "xattr_permissions"),
        "bad-xino": (_o(fs, extra=["xino=yes"]), "xino='yes'"),
    }
    opts, bad = table[case]
    if case == "upper-inside-work":
        os.makedirs(j("w", "u2"))
        opts = _o(fs, upper="w/u2")
    if case in ("missing-mountpoint", "mountpoint-is-file"):
        mnt = bad
    _refused(harness, unionfs_bin, fs, opts, mnt, bad)


def test_workdir_on_another_filesystem(harness, unionfs_bin, fs):
    other = harness.mkdir("other-fs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", other], check=True)
    harness.defer(lambda: subprocess.run(["umount", other], check=True))
    os.makedirs(os.path.join(other, "w"))
    before = _state(other)
    opts = "lowerdir={0}/l1,upperdir={0}/u,workdir={1}/w".format(fs, other)
    _refused(harness, unionfs_bin, fs, opts, os.path.join(fs, "mnt"), os.path.join(other, "w"))
    assert _state(other) == before


@pytest.mark.parametrize("extra", [
    [""],                       # ",," as podman writes it
    ["volatile"],
    ["fsync=0"],
    ["rw"],
    ["noatime"],
    ["allow_other"],
    ["default_permissions"],
    ['context="system_u:object_r:container_file_t:s0"'],
    ["", "volatile", "noatime", "allow_other", "default_permissions", "fsync=0", "rw"],
    ["passthrough=auto"],
    ["passthrough=off"],
], ids=["empty", "volatile", "fsync0", "rw", "noatime", "allow_other", "default_permissions",
        "context", "podman-set", "passthrough-auto", "passthrough-off"])
def test_accepted_options_mount(harness, fs, extra):
    m = harness.mount_unionfs([os.path.join(fs, "l1"), os.path.join(fs, "l2")],
                              os.path.join(fs, "u"), os.path.join(fs, "w"),
                              mnt=os.path.join(fs, "mnt"), opts=extra)
    assert sorted(os.listdir(m.path)) == ["from-l1", "from-l2", "sub"]
    with open(os.path.join(m.path, "new"), "w") as f:
        f.write("written\n")
    with open(os.path.join(fs, "u", "new")) as f:
        assert f.read() == "written\n"
    assert harness.umount(m) == 0


@pytest.mark.parametrize("how", ["ro-option", "no-upper"])
def test_read_only_mounts(harness, fs, how):
    lowers = [os.path.join(fs, "l1"), os.path.join(fs, "l2")]
    if how == "ro-option":
        m = harness.mount_unionfs(lowers, os.path.join(fs, "u"), os.path.join(fs, "w"),
                                  mnt=os.path.join(fs, "mnt"), opts=["ro"])
    else:
        m = harness.mount_unionfs(lowers, mnt=os.path.join(fs, "mnt"))
    with open(os.path.join(m.path, "from-l2")) as f:
        assert f.read() == "l2\n"
    before = _state(fs + "/u"), _state(fs + "/l1"), _state(fs + "/l2")
    with pytest.raises(OSError) as e:
        open(os.path.join(m.path, "new"), "w")
    assert e.value.errno == 30  # EROFS
    with pytest.raises(OSError) as e:
        os.unlink(os.path.join(m.path, "from-l1"))
    assert e.value.errno == 30
    assert (_state(fs + "/u"), _state(fs + "/l1"), _state(fs + "/l2")) == before
    assert harness.umount(m) == 0


def test_help_lists_every_option(unionfs_bin):
    r = subprocess.run([unionfs_bin, "--help"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    missing = [o for o in OPTIONS if not re.search(r"(?<![\w-])" + re.escape(o) + r"(?![\w-])",
                                                   r.stdout)]
    assert not missing, f"--help does not mention {missing}:\n{r.stdout}"


def test_man_page_documents_every_option(unionfs_bin):
    page = os.path.join(REPO, "man", "veneer-unionfs.1")
    require(os.path.exists(page), "man/veneer-unionfs.1 is missing")
    with open(page) as f:
        text = f.read().replace("\\-", "-").replace("\\fB", "").replace("\\fR", "") \
            .replace("\\fI", "")
    missing = [o for o in OPTIONS if o not in text]
    assert not missing, f"the man page does not mention {missing}"
    # ... and every option --help shows.
    r = subprocess.run([unionfs_bin, "--help"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    shown = set(re.findall(r"(?:^|\s)(--?[a-zA-Z][\w-]*)", r.stdout))
    shown |= set(re.findall(r"-o\s+([a-z_]+)", r.stdout))
    missing = sorted(o for o in shown if o not in text)
    assert not missing, f"--help shows {missing} but the man page does not"


def test_man_page_renders_without_warnings():
    page = os.path.join(REPO, "man", "veneer-unionfs.1")
    require(os.path.exists(page), "man/veneer-unionfs.1 is missing")
    require(shutil.which("man") is not None, "man (man-db) is not installed")
    r = subprocess.run(["man", "--warnings", "-l", "-Tutf8", page], capture_output=True,
                       text=True, env=dict(os.environ, MANWIDTH="80"))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    text = re.sub(r".\x08", "", r.stdout)  # drop the overstrike bold
    assert "ON-DISK FORMAT" in text and "EXIT STATUS" in text


def test_version_is_the_meson_version(unionfs_bin):
    with open(os.path.join(REPO, "meson.build")) as f:
        version = re.search(r"version:\s*'([^']+)'", f.read()).group(1)
    r = subprocess.run([unionfs_bin, "--version"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    assert r.returncode == 0
    assert r.stdout.strip() == f"veneer-unionfs {version}"


def test_stale_workdir_files_are_cleaned(harness, fs):
    """What a crashed mount left in <workdir>/work goes; links out of it are not followed."""
    stale = os.path.join(fs, "w", "work")
    outside = harness.mkdir("outside")
    with open(os.path.join(outside, "keep"), "w") as f:
        f.write("keep\n")
    os.makedirs(os.path.join(stale, "#copyup-1", "a", "b", "c"))
    with open(os.path.join(stale, "#copyup-1", "a", "b", "c", "data"), "w") as f:
        f.write("half copied\n")
    os.mknod(os.path.join(stale, "#copyup-1", "a", "wh"), 0o600 | 0o020000, os.makedev(0, 0))
    os.makedirs(os.path.join(stale, "#locked", "inner"))
    os.chmod(os.path.join(stale, "#locked", "inner"), 0)
    os.chmod(os.path.join(stale, "#locked"), 0o500)
    with open(os.path.join(stale, "#tmpfile"), "w") as f:
        f.write("partial\n")
    os.symlink(outside, os.path.join(stale, "#link-to-dir"))
    os.symlink(os.path.join(outside, "keep"), os.path.join(stale, "#link-to-file"))
    os.mkfifo(os.path.join(stale, "#fifo"))
    outside_before = _state(outside)

    m = harness.mount_unionfs([os.path.join(fs, "l1")], os.path.join(fs, "u"),
                              os.path.join(fs, "w"), mnt=os.path.join(fs, "mnt"))
    assert os.listdir(stale) == []
    assert sorted(os.listdir(m.path)) == ["from-l1", "sub"]
    assert _state(outside) == outside_before, "cleaning followed a symlink out of the workdir"
    assert os.listdir(os.path.join(fs, "u")) == []
    assert harness.umount(m) == 0


def test_debug_flag_logs_every_request(harness, fs):
    m = harness.mount_unionfs([os.path.join(fs, "l1")], mnt=os.path.join(fs, "mnt"),
                              args=["-d"])
    assert os.path.exists(os.path.join(m.path, "from-l1"))
    assert harness.umount(m) == 0
    out = m.daemon.output()
    assert "LOOKUP" in out and "GETATTR" in out, out[-2000:]


def test_500_lower_layers(harness, fs):
    """The issue's minimum: 500 lowers on one command line, the leftmost wins."""
    layers = []
    for i in range(500):
        d = os.path.join(fs, "layers", f"l{i}")
        os.makedirs(d)
        with open(os.path.join(d, f"only-{i}"), "w") as f:
            f.write(f"{i}\n")
        with open(os.path.join(d, "shared"), "w") as f:
            f.write(f"{i}\n")
        layers.append(d)
    m = harness.mount_unionfs(layers, os.path.join(fs, "u"), os.path.join(fs, "w"),
                              mnt=os.path.join(fs, "mnt"))
    names = os.listdir(m.path)
    assert len(names) == 501 and "shared" in names
    with open(os.path.join(m.path, "shared")) as f:
        assert f.read() == "0\n"
    with open(os.path.join(m.path, "only-499")) as f:
        assert f.read() == "499\n"
    assert harness.umount(m) == 0


def test_crash_during_copy_up_leaves_no_partial_file(harness, fs):
    """SIGKILL the daemon while it copies a big file up: the next mount cleans the
    workdir and shows the file whole (its lower content, or the finished copy)."""
    big = os.path.join(fs, "l1", "big")
    chunk = bytes(range(256)) * 4096  # 1 MiB, no holes
    with open(big, "wb") as f:
        for _ in range(192):
            f.write(chunk)
    size = os.path.getsize(big)
    lowers = [os.path.join(fs, "l1")]
    upper, work, mnt = (os.path.join(fs, x) for x in ("u", "w", "mnt"))
    m = harness.mount_unionfs(lowers, upper, work, mnt=mnt)
    writer = subprocess.Popen(["sh", "-c", f"printf tail >> '{mnt}/big'"],
                              stderr=subprocess.DEVNULL)
    # Kill as soon as the copy-up's temporary shows in <workdir>/work (or it is done).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and writer.poll() is None:
        if os.listdir(os.path.join(work, "work")):
            break
    m.daemon.stop(signal.SIGKILL)
    writer.wait(10)
    lazy_umount(mnt)

    m = harness.mount_unionfs(lowers, upper, work, mnt=mnt)
    assert os.listdir(os.path.join(work, "work")) == []
    st = os.stat(os.path.join(mnt, "big"))
    assert st.st_size in (size, size + 4), "a partial copy-up is visible"
    with open(os.path.join(mnt, "big"), "rb") as f:
        head = f.read(size)
    assert head == chunk * 192
    assert harness.umount(m) == 0
    for p in (big, os.path.join(upper, "big")):  # pytest keeps old tmp dirs: free 192 MiB
        if os.path.exists(p):
            os.unlink(p)


def test_context_with_mcs_comma_mounts(harness, fs):
    """podman writes context="<label>" and an MCS label has a comma (s0:c1,c2)."""
    extra = ['context="system_u:object_r:container_file_t:s0:c1,c2"']
    m = harness.mount_unionfs([os.path.join(fs, "l1"), os.path.join(fs, "l2")],
                              os.path.join(fs, "u"), os.path.join(fs, "w"),
                              mnt=os.path.join(fs, "mnt"), opts=extra)
    assert sorted(os.listdir(m.path)) == ["from-l1", "from-l2", "sub"]
    assert harness.umount(m) == 0


def test_escaped_colon_in_lowerdir(harness, fs):
    odd = os.path.join(fs, "with:colon")
    os.makedirs(odd)
    with open(os.path.join(odd, "from-colon"), "w") as f:
        f.write("colon\n")
    # The harness writes "with\:colon" into lowerdir=.
    m = harness.mount_unionfs([odd, os.path.join(fs, "l1")], os.path.join(fs, "u"),
                              os.path.join(fs, "w"), mnt=os.path.join(fs, "mnt"))
    assert sorted(os.listdir(m.path)) == ["from-colon", "from-l1", "sub"]
    with open(os.path.join(m.path, "from-colon")) as f:
        assert f.read() == "colon\n"


def _requests(m, op):
    return m.daemon.output().count(f"opcode: {op} (")


def test_timeout_default_is_the_documented_one(harness, unionfs_bin, need_fuse):
    """--help, the man page and the daemon agree on how long the kernel caches names and
    attributes: a name looked up again 1.5 s later costs no request by default (it does
    with timeout=1)."""
    r = subprocess.run([unionfs_bin, "--help"], capture_output=True, text=True, timeout=10,
                       env=sanitizer_env())
    shown = re.search(r"timeout=SECONDS.*\(default (\d+)\)", r.stdout).group(1)
    with open(os.path.join(REPO, "man", "veneer-unionfs.1")) as f:
        page = re.search(r"timeout=.*?\(default (\d+)\)", f.read(), re.S).group(1)
    assert shown == page == "3600"
    counts = {}
    for opts in ((), ("timeout=1",)):
        lower = harness.mkdir(f"l{len(opts)}")
        with open(os.path.join(lower, "f"), "w") as f:
            f.write("x")
        m = harness.mount_unionfs([lower], mnt=harness.path(f"m{len(opts)}"), opts=opts,
                                  args=("-d",))
        os.stat(os.path.join(m.path, "f"))
        before = _requests(m, "LOOKUP") + _requests(m, "GETATTR")
        time.sleep(1.5)
        os.stat(os.path.join(m.path, "f"))
        counts[opts] = _requests(m, "LOOKUP") + _requests(m, "GETATTR") - before
        harness.umount(m)
    assert counts == {(): 0, ("timeout=1",): counts[("timeout=1",)]}
    assert counts[("timeout=1",)] >= 1
