# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-run operations (issue 11): what a kill -9 of the launcher or of its union daemon
leaves, --cleanup of any leftover (with or without a state.json), a bad value for every
option, and volumes whose paths hold ':' (-v with \\: and --mount) or whose target is a
symlink in the image."""
import os
import random
import signal
import stat
import subprocess
import time

import pytest

from test_run import Runner, alive, busybox_rootfs, cgroup_dirs, proc_info, write
from veneer_harness import (build_path, lazy_umount, mounts_below, pids_mentioning, require,
                             sanitizer_env)


@pytest.fixture
def vr(harness, run_bin, need_fuse):
    require(os.access(build_path("unionfs/veneer-unionfs"), os.X_OK), "veneer-unionfs is not built")
    return Runner(harness, run_bin, None)


def wait_gone(pid, timeout=15):
    end = time.time() + timeout
    while alive(pid) and time.time() < end:
        time.sleep(0.05)
    return not alive(pid)


def cleanup(vr):
    r = subprocess.run([vr.bin, "--state-dir", vr.state, "--cleanup"], capture_output=True,
                       text=True, timeout=60, env=sanitizer_env())
    vr.check_sanitizer(r.stderr)
    return r


def union_daemons(vr):
    """veneer-unionfs processes of this test's state dir (zombies aside)."""
    return [p for p, _ in pids_mentioning(vr.state) if "veneer-unionfs" in proc_info(p)]


# --- item 4: kill -9 of veneer-run ---------------------------------------------------------
def test_sigkill_of_launcher_union_daemon_exits(vr):
    """The union daemon ends with its launcher (and container), before any --cleanup."""
    name = vr.name()
    p = vr.popen(["--memory", "64M", "--", "sh", "-c", "echo ready; exec sleep 100"], name=name)
    assert p.stdout.readline().strip() == "ready"
    st = vr.wait_state(name)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert wait_gone(st["Pid"]), proc_info(st["Pid"])
    assert wait_gone(st["UnionPid"]), proc_info(st["UnionPid"])
    # State and cgroups wait for --cleanup, which removes them and says nothing else.
    assert cgroup_dirs(name)
    r = cleanup(vr)
    assert r.returncode == 0 and r.stdout.split() == [name], (r.stdout, r.stderr)
    assert r.stderr == ""
    vr.assert_nothing_left(name)


def test_sigkill_of_launcher_during_setup_then_cleanup(vr):
    """Killed at random points of its set-up: --cleanup leaves nothing and prints only IDs
    (no 'could not signal readiness ... Broken pipe' from an orphaned union daemon)."""
    rnd = random.Random(11)
    names = []
    for i in range(12):
        name = vr.name()
        names.append(name)
        p = vr.popen(["--memory", "64M", "--", "true"], name=name, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
        time.sleep(rnd.uniform(0.0, 0.25))
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    # Every daemon of a killed launcher ends by itself.
    end = time.time() + 20
    while union_daemons(vr) and time.time() < end:
        time.sleep(0.1)
    assert union_daemons(vr) == []
    r = cleanup(vr)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert set(r.stdout.split()) <= set(names)
    assert os.listdir(vr.state) == []
    for n in names:
        vr.assert_nothing_left(n)
    assert mounts_below(vr.state) == []


# A launcher's lock on its directory as a kill -9 leaves it: the launcher (the process that
# took the flock) is gone, a child that shares the open file (a union daemon between fork and
# exec, the init dying of its PR_SET_PDEATHSIG) still holds it for a moment.
HOLD = ("import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "if sys.argv[2] == 'live':\n"
        "    print(os.getpid(), flush=True); time.sleep(100)\n"
        "r, w = os.pipe()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    n = os.open('/dev/null', os.O_WRONLY); os.dup2(n, 1); os.dup2(n, 2); os.close(r)\n"
        "    os.write(w, b'x'); time.sleep(1.5); os._exit(0)\n"
        "os.read(r, 1); print(child, flush=True)\n")


def _locked(d):
    import fcntl
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.mark.parametrize("with_state", [False, True], ids=["stateless", "state.json"])
def test_cleanup_right_after_kill_waits_for_the_launchers_children(vr, with_state):
    """The CI race of test_sigkill_of_launcher_during_setup_then_cleanup, made certain: a
    --cleanup run while a dead launcher's child still holds the directory's lock waits for
    it and removes everything; a live holder's directory stays."""
    name = vr.name()
    d = os.path.join(vr.state, name)
    for sub in ("merged", "lower", "work/work"):
        os.makedirs(os.path.join(d, sub))
    # A live launcher: untouched, and --cleanup does not wait for it.
    live = subprocess.Popen(["python3", "-c", HOLD, d, "live"], stdout=subprocess.PIPE, text=True)
    try:
        launcher = int(live.stdout.readline())
        if with_state:
            write(os.path.join(d, "state.json"),
                  '{"Id": "%s", "LauncherPid": %d, "LauncherStartTime": 1, "Status": "running"}\n'
                  % (name, launcher))
        r = cleanup(vr)
        assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
        assert os.path.isdir(os.path.join(d, "work"))
    finally:
        live.kill()
        live.wait()
    # The launcher died; its child still holds the lock.
    p = subprocess.run(["python3", "-c", HOLD, d, "dead"], capture_output=True, text=True,
                       timeout=30)
    child = int(p.stdout)
    assert _locked(d) and alive(child)
    r = cleanup(vr)
    assert r.returncode == 0 and r.stdout.split() == [name], (r.stdout, r.stderr)
    assert r.stderr == ""
    assert not alive(child)
    assert os.listdir(vr.state) == []


# --- item 5: kill -9 of the union daemon -----------------------------------------------------
def test_sigkill_of_union_daemon_leaves_nothing(vr):
    name = vr.name()
    p = vr.popen(["--", "sh", "-c", "echo ready; exec sleep 100"], name=name)
    assert p.stdout.readline().strip() == "ready"
    st = vr.wait_state(name)
    os.kill(st["UnionPid"], signal.SIGKILL)
    vr.communicate(p, timeout=30)
    assert p.returncode == 128 + signal.SIGKILL
    vr.assert_nothing_left(name)
    # The name is free again.
    r = vr.run(["--", "true"], name=name)
    assert r.returncode == 0, r.stderr
    vr.assert_nothing_left(name)


def test_cleanup_of_directory_without_state(vr):
    """A container directory with no state.json (as a launcher killed before writing it, or
    an older one whose teardown failed, leaves): --cleanup removes it and frees the name."""
    name = vr.name()
    d = os.path.join(vr.state, name)
    for sub in ("merged", "lower", "work/work", "upper/etc"):
        os.makedirs(os.path.join(d, sub))
    write(os.path.join(d, "upper/etc/x"), "x\n")
    r = vr.run(["--", "true"], name=name)
    assert r.returncode == 121 and name in r.stderr
    r = cleanup(vr)
    assert r.returncode == 0 and r.stdout.split() == [name], (r.stdout, r.stderr)
    assert os.listdir(vr.state) == []
    r = vr.run(["--", "true"], name=name)
    assert r.returncode == 0, r.stderr
    vr.assert_nothing_left(name)


def test_cleanup_leaves_live_and_foreign(vr):
    """--cleanup takes no directory a live launcher holds (even before its state.json), and
    no directory holding what veneer does not make."""
    name = vr.name()
    p = vr.popen(["--", "sh", "-c", "echo ready; read x"], name=name, stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ready"
    vr.wait_state(name)
    os.rename(os.path.join(vr.state, name, "state.json"), os.path.join(vr.state, "saved.json"))
    foreign = os.path.join(vr.state, "foreign")
    write(os.path.join(foreign, "notes.txt"), "mine\n")
    r = cleanup(vr)
    assert r.returncode == 0 and r.stdout == "", (r.stdout, r.stderr)
    assert os.path.isdir(os.path.join(vr.state, name, "merged"))
    with open(os.path.join(foreign, "notes.txt")) as f:
        assert f.read() == "mine\n"
    os.rename(os.path.join(vr.state, "saved.json"), os.path.join(vr.state, name, "state.json"))
    vr.release(p)
    vr.assert_nothing_left(name)
    os.unlink(os.path.join(foreign, "notes.txt"))
    os.rmdir(foreign)


# --- item 8: ':' in volume paths, symbolic links on the way to a target ----------------------
def test_volume_colon_escaped_and_mount(vr, harness):
    src = harness.mkdir("vol:with:colons")
    write(os.path.join(src, "f"), "hi\n")
    esc = src.replace(":", "\\:")
    r = vr.run(["-v", f"{esc}:/data\\:x:ro", "--", "sh", "-c",
                'cat "/data:x/f"; touch "/data:x/g" 2>/dev/null && echo writable; true'])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    comma = harness.mkdir("a,b:c")
    write(os.path.join(comma, "f"), "comma\n")
    name = vr.name()
    r = vr.run(["--mount", f"type=bind,src={src},dst=/m:n",
                "--mount", f'type=bind,"source={comma}",target=/q:r,readonly',
                "--", "sh", "-c", 'cat /m:n/f /q:r/f; echo w > /m:n/w; '
                'touch /q:r/g 2>/dev/null && echo writable; true'], name=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\ncomma\n"
    with open(os.path.join(src, "w")) as f:
        assert f.read() == "w\n"
    vr.assert_nothing_left(name)


def test_mount_bind_source_must_exist_and_no_copy(vr, harness):
    name = vr.name()
    missing = harness.path("not-there")
    r = vr.run(["--mount", f"type=bind,src={missing},dst=/etc", "--", "true"], name=name)
    assert r.returncode == 122 and missing in r.stderr, r.stderr
    assert not os.path.exists(missing)
    assert os.listdir(vr.state) == []
    empty = harness.mkdir("empty")
    r = vr.run(["--mount", f"type=bind,src={empty},dst=/etc", "--", "true"])
    assert r.returncode == 0, r.stderr
    assert os.listdir(empty) == []  # Docker's bind: no copy-data (-v would copy /etc)


def test_volume_target_symlink_refused(vr, harness):
    """A target through a symbolic link of the image is refused before set-up, naming it."""
    lower = busybox_rootfs(harness)
    os.makedirs(os.path.join(lower, "real"))
    os.symlink("/real", os.path.join(lower, "link"))
    os.symlink("/real", os.path.join(lower, "gone"))
    os.symlink("../real", os.path.join(lower, "etc", "rel"))
    upper = harness.mkdir("upper")
    os.symlink("/real", os.path.join(upper, "uplink"))
    os.mkdir(os.path.join(lower, "uplink"))  # the upper layer's symlink hides it
    os.mknod(os.path.join(upper, "gone"), stat.S_IFCHR | 0o600, 0)  # a whiteout
    host = harness.mkdir("host")
    inner = harness.mkdir("inner")
    os.symlink("/elsewhere", os.path.join(inner, "sub"))
    base = ["--layers", lower, "--upper", upper]
    cases = [
        (["-v", f"{host}:/link"], "'/link'"),
        (["-v", f"{host}:/link/deeper/x"], "'/link'"),
        (["-v", f"{host}:/etc/rel/x"], "'/etc/rel'"),
        (["-v", f"{host}:/uplink"], "'/uplink'"),
        (["--mount", f"type=bind,src={host},dst=/link"], "'/link'"),
        (["-v", f"{inner}:/vol", "-v", f"{host}:/vol/sub/x"], "'/vol/sub'"),
    ]
    for args, needle in cases:
        name = vr.name()
        r = vr.run(base + args + ["--", "true"], name=name)
        assert r.returncode == 122, (args, r.returncode, r.stderr)
        assert needle in r.stderr and "symbolic link" in r.stderr, (args, r.stderr)
        assert r.stderr.count("veneer-run:") == 1, r.stderr
        assert os.listdir(vr.state) == []
        assert cgroup_dirs(name) == []
    # The host's /var/run -> /run with the embedded default layer.
    if os.path.islink("/var/run"):
        r = vr.run(["-v", f"{host}:/var/run/x", "--", "true"])
        assert r.returncode == 122 and "'/var/run'" in r.stderr, r.stderr
    # A real directory, an absent one, one whose symlink is whited out: fine.
    write(os.path.join(host, "f"), "v\n")
    r = vr.run(base + ["-v", f"{host}:/real/x", "-v", f"{host}:/new/y", "-v", f"{host}:/gone",
                       "--", "sh", "-c", "cat /real/x/f /new/y/f /gone/f"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "v\nv\nv\n"


# --- item 7: a bad value for every option ------------------------------------------------------
def _bad_cases(harness, procfs_mount):
    """{option: (args, exit code, text the one message must hold)}; the documented codes of
    veneer-run(1)'s EXIT STATUS."""
    missing = harness.path("missing")
    afile = harness.path("a-file")
    write(afile, "x\n")
    return {
        "--help": (["--help=x"], 121, "--help=x"),
        "--version": (["--version=x"], 121, "--version=x"),
        "--debug": (["--debug=x", "true"], 121, "--debug=x"),
        "--layers": (["--layers", missing, "true"], 122, missing),
        "--layers=": (["--layers", "", "true"], 121, "--layers"),
        "--upper": (["--upper", afile, "true"], 122, afile),
        "--keep": (["--keep=yes", "true"], 121, "--keep=yes"),
        "--volume": (["--volume", "relative:/x", "true"], 121, "relative:/x"),
        "-v": (["-v", "/a:/b:bogus", "true"], 121, "/a:/b:bogus"),
        "--mount": (["--mount", "type=bind,src=/a", "true"], 121, "type=bind,src=/a"),
        "--memory": (["--memory", "12Q", "true"], 121, "12Q"),
        "--cpus": (["--cpus", "-1", "true"], 121, "-1"),
        "--cpuset-cpus": (["--cpuset-cpus", "4096", "true"], 121, "4096"),
        "--pids-limit": (["--pids-limit", "0", "true"], 121, "'0'"),
        "--ignore-limits": (["--ignore-limits=1", "true"], 121, "--ignore-limits=1"),
        "--no-procfs": (["--no-procfs=1", "true"], 121, "--no-procfs=1"),
        "--procfs-mount": (["--procfs-mount", afile, "true"], 122, afile),
        "--hostname": (["--hostname", "no/slash", "true"], 121, "no/slash"),
        "--net": (["--net", "bridge", "true"], 121, "bridge"),
        "--rootless": (["--rootless=1", "true"], 121, "--rootless=1"),
        "--env": (["--env", "=x", "true"], 121, "=x"),
        "-e": (["-e", "", "true"], 121, "-e"),
        "--workdir": (["--workdir", "rel/dir", "true"], 121, "rel/dir"),
        "--user": (["--user", "nobody", "true"], 121, "nobody"),
        "--stop-timeout": (["--stop-timeout", "soon", "true"], 121, "soon"),
        "--cap-add": (["--cap-add", "CAP_BOGUS", "true"], 121, "CAP_BOGUS"),
        "--cap-drop": (["--cap-drop", "FLY", "true"], 121, "FLY"),
        "--security-opt": (["--security-opt", "apparmor=x", "true"], 121, "apparmor=x"),
        "--security-opt=seccomp": (["--security-opt", f"seccomp={missing}", "true"], 122,
                                   missing),
        "--device": (["--device", f"{afile}:/dev/x", "true"], 122, afile),
        "--device=spec": (["--device", "/dev/null:/etc/x", "true"], 121, "/dev/null:/etc/x"),
        "--mask": (["--mask", "relative", "true"], 121, "relative"),
        "--privileged": (["--privileged=yes", "true"], 121, "--privileged=yes"),
        "--state-dir": (["--state-dir", afile + "/sub", "true"], 122, afile + "/sub"),
        "--name": (["--name", ".hidden", "true"], 121, ".hidden"),
        "--unionfs": (["--unionfs", missing, "true"], 125, missing),
        "--procfs": (["--procfs", missing, "true"], 125, "veneer-procfs"),
        "--list": (["--list", "extra"], 121, "extra"),
        "--inspect": (["--inspect", "../etc"], 124, "../etc"),
        "--cleanup": (["--cleanup=now"], 121, "--cleanup=now"),
        "--bogus": (["--bogus", "true"], 121, "--bogus"),
        "COMMAND": ([], 121, "COMMAND"),
        "COMMAND=missing": (["--", "veneer-no-such-command"], 127, "veneer-no-such-command"),
        "COMMAND=noexec": (["--", "/etc/passwd"], 126, "/etc/passwd"),
    }


def test_bad_value_for_every_option(harness, run_bin, need_fuse):
    import re as _re
    helptext = subprocess.run([run_bin, "--help"], capture_output=True, text=True).stdout
    options = set(_re.findall(r"(?<![\w-])(--[a-z][a-z-]+|-[a-zA-Z])\b", helptext))
    procfs_mount = harness.path("procfs-mnt")
    cases = _bad_cases(harness, procfs_mount)

    def undo():  # only if a case wrongly got as far as starting veneer-procfs
        if os.path.ismount(procfs_mount):
            lazy_umount(procfs_mount)
        for pid, _ in pids_mentioning(procfs_mount):
            os.kill(pid, signal.SIGKILL)
    harness.defer(undo)
    covered = {k.split("=")[0] for k in cases}
    # Every option of --help has a case (the short ones through their long names).
    shorts = {"-v": "--volume", "-e": "--env", "-w": "--workdir", "-u": "--user",
              "-d": "--debug", "-h": "--help", "-V": "--version"}
    missing = sorted(o for o in options if o not in covered and shorts.get(o) not in covered)
    assert missing == [], missing
    unionfs = build_path("unionfs/veneer-unionfs")
    for key, (args, code, needle) in cases.items():
        state = harness.path("state-" + _re.sub(r"\W", "_", key))
        name = "bad" + _re.sub(r"\W", "", key)
        argv = [run_bin, "--state-dir", state, "--procfs-mount", procfs_mount, "--name", name]
        if key not in ("--unionfs", "--state-dir"):
            argv += ["--unionfs", unionfs]
        if key == "--state-dir":
            argv = [run_bin, "--procfs-mount", procfs_mount, "--unionfs", unionfs]
        r = subprocess.run(argv + args, capture_output=True, text=True, timeout=60,
                           env=sanitizer_env(), stdin=subprocess.DEVNULL)
        msg = [ln for ln in r.stderr.splitlines() if ln != "Try 'veneer-run --help'."]
        assert r.returncode == code, (key, r.returncode, r.stderr)
        assert len(msg) == 1 and msg[0].startswith("veneer-run: "), (key, r.stderr)
        assert needle in msg[0], (key, needle, r.stderr)
        assert r.stdout == "", (key, r.stdout)
        # Nothing created: no state dir, procfs mount point, cgroup, mount or process.
        assert not os.path.exists(state), key
        assert not os.path.exists(procfs_mount), key
        assert cgroup_dirs(name) == [], key
        assert mounts_below(harness.path()) == [], key
        assert pids_mentioning(state) == [] and pids_mentioning(procfs_mount) == [], key
