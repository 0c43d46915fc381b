# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-run --rootless, run by an unprivileged user created for the test.

The union daemon mounts from inside the launcher's user namespace, which needs
read-write access to /dev/fuse (crw-rw-rw- as Debian ships it); when the
machine has it tighter the test opens it up for its duration and restores it.
"""
import os
import subprocess
import time

import pytest

from rootless_util import unprivileged_user
from veneer_harness import build_path, require, sanitizer_env


@pytest.fixture
def rootless(harness, run_bin, need_fuse):
    require(os.access(build_path("unionfs/veneer-unionfs"), os.X_OK),
            "veneer-unionfs is not built")
    with unprivileged_user("vrtest") as user:
        yield user


def test_rootless_as_unprivileged_user(rootless, run_bin, harness):
    user = rootless
    pw, home = user.pw, user.home
    state = os.path.join(home, "state")
    upper = os.path.join(home, "upper")
    base = [run_bin, "--state-dir", state, "--unionfs", build_path("unionfs/veneer-unionfs"),
            "--no-procfs"]

    r = user.run(base + ["--upper", upper, "--hostname", "rl", "--", "sh", "-c",
                         "id -u; id -g; cat /proc/self/uid_map; hostname; "
                         "echo rootless > /veneer-rootless.txt; ls -ln /veneer-rootless.txt; "
                         "free -m | awk '/^Mem:/ {print $2}'"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split() == ["0", str(pw.pw_uid), "1"]
    assert lines[3] == "rl"
    assert lines[4].split()[2:4] == ["0", "0"]
    # Written as "root" inside, owned by the user outside.
    st = os.stat(os.path.join(upper, "veneer-rootless.txt"))
    assert st.st_uid == pw.pw_uid
    with open(os.path.join(upper, "veneer-rootless.txt")) as f:
        assert f.read() == "rootless\n"
    assert os.listdir(state) == []

    # The same confinement inside the user namespace: Docker's capability set, the seccomp
    # filter (no new namespace, no mount), PID 1 out of reach; --privileged lifts it.
    show = ("grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; "
            "unshare -Urm true 2>/dev/null || echo NO-UNSHARE; "
            "mount -t tmpfs none /mnt 2>/dev/null || echo NO-MOUNT; "
            "readlink /proc/1/fd/0 >/dev/null 2>&1 || echo NO-INIT")
    r = user.run(base + ["--", "sh", "-c", show])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["CapEff:", "00000000a80425fb", "CapBnd:", "00000000a80425fb",
                                "Seccomp:", "2", "NO-UNSHARE", "NO-MOUNT", "NO-INIT"], r.stdout
    r = user.run(base + ["--privileged", "--", "sh", "-c", show])
    assert r.returncode == 0, r.stderr
    assert "Seccomp:\t0" in r.stdout and "NO-" not in r.stdout.replace("NO-INIT", ""), r.stdout

    # Two rootless containers do not see each other's upper, whichever started first: the
    # later one masks its own in the earlier one (in the user's own user namespaces), through
    # the registry the first veneer-run run as root makes.
    subprocess.run([run_bin, "--state-dir", os.path.join(os.path.dirname(home), "root-state"),
                    "--unionfs", build_path("unionfs/veneer-unionfs"), "--no-procfs", "--",
                    "true"], check=True, capture_output=True, env=sanitizer_env())
    ua, ub = os.path.join(home, "up-a"), os.path.join(home, "up-b")
    a = subprocess.Popen(base + ["--upper", ua, "--", "sh", "-c",
                                 f"echo a > /a; echo ready; read x; ls -A {ub} | wc -l"],
                         user=pw.pw_uid, group=pw.pw_gid, extra_groups=[], cwd="/", text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=sanitizer_env({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}))
    try:
        assert a.stdout.readline() == "ready\n"
        r = user.run(base + ["--upper", ub, "--", "sh", "-c",
                             f"echo b > /b; ls -A {ua} | wc -l"])
        assert r.returncode == 0 and r.stdout == "0\n", r.stdout + r.stderr
        out, err = a.communicate("\n", timeout=60)
        assert a.returncode == 0 and out == "0\n", out + err
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()

    # A limit that cannot be applied is refused before anything is created ...
    r = user.run(base + ["--memory", "64M", "--", "true"])
    assert r.returncode == 123, r.stderr
    assert "--memory" in r.stderr and "--ignore-limits" in r.stderr
    assert os.listdir(state) == []
    # ... or, when asked, dropped with a warning naming it.
    r = user.run(base + ["--memory", "64M", "--ignore-limits", "--", "echo", "ran"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ran\n"
    assert "--memory is NOT applied" in r.stderr
    # Only the caller is mapped.
    r = user.run(base + ["-u", "1000", "--", "true"])
    assert r.returncode == 123 and "rootless" in r.stderr
    # --net host: no sysfs of its own, the host's read-only one.
    r = user.run(base + ["--net", "host", "--", "sh", "-c",
                         "ls /sys/class/net | grep -c lo; touch /sys/x 2>/dev/null || echo RO"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "RO"]

    # A veneer-procfs instance started by root is used (not started) by a rootless launcher.
    pfs = os.path.join(os.path.dirname(home), "procfs")
    os.mkdir(pfs)
    daemon = harness.start_daemon([build_path("procfs/veneer-procfs"), "-f", pfs])
    try:
        r = user.run([run_bin, "--state-dir", state, "--unionfs",
                      build_path("unionfs/veneer-unionfs"), "--procfs-mount", pfs, "--", "sh",
                      "-c", "grep -c ' /proc/meminfo .* - fuse' /proc/self/mountinfo; "
                      "grep MemTotal /proc/meminfo"])
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "1"
        with open("/proc/meminfo") as f:
            assert lines[1] == f.readline().strip()  # no cgroup limit: the host's total
        # None running and none startable: a notice, and the host's values.
        r = user.run([run_bin, "--state-dir", state, "--unionfs",
                      build_path("unionfs/veneer-unionfs"), "--procfs-mount",
                      os.path.join(home, "none"), "--", "true"])
        assert r.returncode == 0, r.stderr
        assert "cannot start the shared one" in r.stderr
    finally:
        subprocess.run(["umount", pfs], capture_output=True)
        daemon.stop()

    end = time.time() + 10
    while user.processes() and time.time() < end:
        time.sleep(0.1)
    assert user.processes() == []
    assert os.listdir(state) == []
