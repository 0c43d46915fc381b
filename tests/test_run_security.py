# SPDX-License-Identifier: GPL-2.0-or-later
"""The escape suite: what a veneer-run container must not reach of the host.

Each test makes an attempt inside a container (tests/escape_probes.py: raw system
calls), asserts that it fails with the errno the kernel gives for the barrier in its
way, that the host is unchanged, and that the option naming the barrier makes the same
attempt succeed, so a test would fail if the barrier were not there. The probe script
is on the host's root file system, which is every container's base layer here.
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile

import pytest

from test_run import Runner, cgroup_dirs, write
from veneer_harness import build_path, require

PROBES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "escape_probes.py")
DEFAULT_CAPS = 0xa80425fb


@pytest.fixture
def vr(harness, run_bin, need_fuse):
    require(os.access(build_path("unionfs/veneer-unionfs"), os.X_OK), "veneer-unionfs is not built")
    require(platform.machine() == "x86_64", "the probes use x86-64 system call numbers")
    require(os.access("/usr/bin/python3", os.X_OK), "no /usr/bin/python3 in the base layer")
    return Runner(harness, run_bin, None)


def probe_script(attempts):
    return "; ".join(f"/usr/bin/python3 {PROBES} " + " ".join(str(a) for a in at)
                     for at in attempts)


def probes(vr, attempts, opts=()):
    """Run each (name, *args) probe in one container; their result lines, in order."""
    r = vr.run(list(opts) + ["--", "sh", "-c", probe_script(attempts)])
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert len(out) == len(attempts), r.stdout + r.stderr
    return out


def one(vr, *attempt, opts=()):
    return probes(vr, [attempt], opts)[0]


@pytest.fixture
def public_dir(harness):
    """A directory users other than root can reach (the test's tmp dir is root's alone)."""
    d = tempfile.mkdtemp(prefix="veneer-security-", dir="/tmp")
    os.chmod(d, 0o755)
    harness.defer(shutil.rmtree, d, True)
    return d


def status_fields(text):
    return dict(line.split(":\t", 1) for line in text.strip().splitlines() if ":\t" in line)


def host_cap_bounding():
    with open("/proc/self/status") as f:
        return int(status_fields(f.read())["CapBnd"], 16)


def v1_devices():
    """The v1 devices controller is mounted (else the device list is a BPF program)."""
    return os.path.exists("/sys/fs/cgroup/devices/devices.list")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --- capabilities ------------------------------------------------------------------------
def test_capabilities_are_docker_default_set(vr):
    show = "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status"
    name = vr.name()
    r = vr.run(["--", "sh", "-c", show], name=name)
    assert r.returncode == 0, r.stderr
    f = status_fields(r.stdout)
    for s in ("CapInh", "CapPrm", "CapEff", "CapBnd"):
        assert int(f[s], 16) == DEFAULT_CAPS, (s, f)
    assert int(f["CapAmb"], 16) == 0
    assert f["NoNewPrivs"] == "0" and f["Seccomp"] == "2"
    # Another user: nothing effective or permitted after exec, the same bounding set.
    f = status_fields(vr.run(["-u", "1000", "--", "sh", "-c", show]).stdout)
    assert int(f["CapBnd"], 16) == DEFAULT_CAPS
    assert int(f["CapEff"], 16) == int(f["CapPrm"], 16) == int(f["CapInh"], 16) == 0
    # --cap-add / --cap-drop as Docker spells them, with or without CAP_, any case.
    f = status_fields(vr.run(["--cap-add", "sys_admin", "--cap-drop", "CAP_NET_RAW", "--",
                              "sh", "-c", show]).stdout)
    assert int(f["CapEff"], 16) == (DEFAULT_CAPS | 1 << 21) & ~(1 << 13)
    f = status_fields(vr.run(["--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE", "--", "sh",
                              "-c", show]).stdout)
    assert int(f["CapBnd"], 16) == int(f["CapEff"], 16) == 1 << 10
    # --privileged: all veneer-run has, no seccomp filter.
    f = status_fields(vr.run(["--privileged", "--", "sh", "-c", show]).stdout)
    assert int(f["CapEff"], 16) == int(f["CapBnd"], 16) == host_cap_bounding()
    assert f["Seccomp"] == "0"
    f = status_fields(vr.run(["--security-opt", "no-new-privileges", "--security-opt",
                              "seccomp=unconfined", "--", "sh", "-c", show]).stdout)
    assert f["NoNewPrivs"] == "1" and f["Seccomp"] == "0"


def test_state_records_confinement(vr):
    import subprocess as sp
    name = vr.name()
    p = vr.popen(["--cap-add", "SYS_TIME", "--mask", "/srv", "--", "sh", "-c",
                  "echo ready; read x"], name=name, stdin=sp.PIPE)
    assert p.stdout.readline().strip() == "ready"
    sec = vr.inspect(name)["Security"]
    assert sec["Privileged"] is False and sec["Seccomp"] == "default"
    assert "CAP_SYS_TIME" in sec["Capabilities"] and "CAP_SYS_ADMIN" not in sec["Capabilities"]
    assert len(sec["Capabilities"]) == 15
    assert sec["Devices"] == ("v1" if v1_devices() else "bpf") and sec["Masks"] == ["/srv"]
    vr.release(p)


# --- devices ------------------------------------------------------------------------------
@pytest.fixture
def loopdev(harness):
    """A loop device over a small ext4 image holding secret.txt: a disk the host can open."""
    require(shutil.which("losetup") and shutil.which("mkfs.ext4"), "util-linux/e2fsprogs")
    content = harness.mkdir("disk-content")
    write(os.path.join(content, "secret.txt"), "host disk data\n")
    img = harness.path("disk.img")
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", content, img], check=True)
    dev = subprocess.run(["losetup", "-f", "--show", img], capture_output=True, text=True,
                         check=True).stdout.strip()
    harness.defer(subprocess.run, ["losetup", "-d", dev])
    st = os.stat(dev)
    return dev, os.major(st.st_rdev), os.minor(st.st_rdev), img


def root_device():
    st = os.stat("/")
    return os.major(st.st_dev), os.minor(st.st_dev)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_escape_block_device(vr, loopdev, mode, monkeypatch):
    """mknod + mount of a host disk: mknod works (as on Docker), open and mount do not.
    The root file system's own device is tried too, but on some machines (this one) the
    host itself may not open it: the loop device is what shows the barrier is ours."""
    require(mode == "v2" or v1_devices(), "no v1 devices controller")
    dev, major, minor, img = loopdev
    before = sha256(img)
    rmaj, rmin = root_device()
    name = vr.name()
    monkeypatch.setenv("VENEER_DEVICE_CGROUP", mode)
    out = probes(vr, [("mknod_open", "b", major, minor), ("mount_dev", "/tmp/escape-dev"),
                      ("mknod_open", "b", rmaj, rmin, "/tmp/escape-root")])
    assert out == ["ERR EPERM", "ERR EPERM", "ERR EPERM"], out
    assert sha256(img) == before
    # Which mechanism said no: v1, the container's devices cgroup; v2, a device program
    # on a cgroup2 directory of its own (on this hybrid host).
    p = vr.popen(["--", "sh", "-c", "cat /proc/self/cgroup; echo END; read x"], name=name,
                 stdin=subprocess.PIPE)
    cg = "".join(iter(p.stdout.readline, "END\n"))
    sec = vr.inspect(name)["Security"]
    if mode == "v1":
        assert f"devices:/veneer-{name}" in cg and sec["Devices"] == "v1"
        with open(f"/sys/fs/cgroup/devices/veneer-{name}/devices.list") as f:
            assert "b *:* m" in f.read()
    else:
        assert sec["Devices"] == "bpf" and sec["DeviceCgroup"].endswith(f"/veneer-{name}")
        assert f"0::/veneer-{name}" in cg and "devices:/\n" in cg
    vr.release(p)
    vr.assert_nothing_left(name)
    assert not os.path.exists(sec["DeviceCgroup"] or "/nonexistent")
    # The opt-ins: --device makes that one node usable (read-only here), --privileged all.
    out = probes(vr, [("read", dev), ("mount_dev", dev)], opts=["--device", f"{dev}:r"])
    assert out == ["OK read 16", "ERR EPERM"], out
    assert one(vr, "mount_dev", dev, opts=["--privileged"]) == "OK lost+found secret.txt"
    assert sha256(img) == before


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_escape_char_device(vr, mode, monkeypatch):
    """/dev/fuse (which root on the host may open) is not among the container's devices."""
    require(mode == "v2" or v1_devices(), "no v1 devices controller")
    monkeypatch.setenv("VENEER_DEVICE_CGROUP", mode)
    with open("/dev/fuse", "rb"):
        pass
    out = probes(vr, [("mknod_open", "c", 10, 229), ("mknod_open", "c", 1, 3, "/tmp/null")])
    assert out == ["ERR EPERM", "OK opened"], out  # null is among them
    assert one(vr, "open", "/dev/fuse", opts=["--device", "/dev/fuse"]) == "OK opened"
    assert one(vr, "open", "/dev/fuse", opts=["--privileged"]) == "OK opened"


def test_dev_privileged_has_host_devices(vr, loopdev):
    dev = loopdev[0]
    r = vr.run(["--privileged", "--", "sh", "-c", f"ls /dev; test -b {dev} && echo BLOCK"])
    assert r.returncode == 0, r.stderr
    assert "BLOCK" in r.stdout and "fuse" in r.stdout.split()
    r = vr.run(["--", "ls", "/dev"])
    assert "fuse" not in r.stdout.split() and os.path.basename(dev) not in r.stdout.split()


# --- /proc and /sys -----------------------------------------------------------------------
def test_escape_proc_sys_and_sysrq(vr):
    with open("/proc/sys/kernel/domainname") as f:
        host_domain = f.read()
    # A kernel without CONFIG_MAGIC_SYSRQ (this machine's) has no sysrq-trigger to reach.
    sysrq = os.path.exists("/proc/sysrq-trigger")
    out = probes(vr, [("remount_procsys",), ("write_sysctl",),
                      ("write_sysctl", "/proc/sys/vm/overcommit_memory", "1"), ("sysrq",)])
    assert out == ["ERR EPERM", "ERR EROFS", "ERR EROFS", "ERR EROFS" if sysrq else "ERR ENOENT"]
    # --privileged: /proc/sys is writable (a namespaced file here), sysrq-trigger opens
    # (nothing is written to it).
    out = probes(vr, [("write_sysctl",), ("sysrq",)], opts=["--privileged"])
    assert out == ["OK written", "OK opened" if sysrq else "ERR ENOENT"], out
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read() == host_domain


def test_masked_and_readonly_paths(vr):
    script = ("for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do "
              "  test -e $f && echo $f $(head -c 64 $f | wc -c); done; "
              "ls -A /sys/firmware | wc -l; grep -c ' /proc/sys ro,' /proc/self/mountinfo; "
              f"/usr/bin/python3 {PROBES} umount /proc/kcore")
    r = vr.run(["--", "sh", "-c", script])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(line.endswith(" 0") for line in lines[:-3]), lines
    assert lines[-3:] == ["0", "1", "ERR EPERM"], lines
    r = vr.run(["--privileged", "--", "sh", "-c", "ls -A /sys/firmware | wc -l; "
                "grep -c ' /proc/sys ro,' /proc/self/mountinfo; "
                "grep -cE ' /proc/(kcore|keys) ' /proc/self/mountinfo"])
    lines = r.stdout.split()
    assert int(lines[0]) > 0 and lines[1:] == ["0", "0"], r.stdout


def test_escape_kmsg(vr):
    assert one(vr, "kmsg") == "ERR EPERM"
    assert one(vr, "kmsg", opts=["--cap-add", "SYSLOG"]) == "OK opened"


def test_escape_umount_procfs_file(vr, harness, procfs_bin):
    vr.procfs = harness.mount_fuse([procfs_bin], harness.path("procfs")).path
    with open("/proc/meminfo") as f:
        host_total = f.readline().strip()
    r = vr.run(["--memory", "200M", "--", "sh", "-c", "head -1 /proc/meminfo; "
                f"/usr/bin/python3 {PROBES} umount /proc/meminfo; head -1 /proc/meminfo"])
    lines = r.stdout.strip().splitlines()
    assert lines[1] == "ERR EPERM"
    assert lines[0] == lines[2] and lines[0] != host_total
    r = vr.run(["--memory", "200M", "--cap-add", "SYS_ADMIN", "--", "/usr/bin/python3", PROBES,
                "umount", "/proc/meminfo"])
    assert r.stdout.strip() == f"OK {host_total}"


def test_escape_cgroup_limit(vr):
    name = vr.name()
    p = vr.popen(["--memory", "64M", "--", "sh", "-c",
                  f"/usr/bin/python3 {PROBES} mount_cgroup {1 << 30}; read x"], name=name,
                 stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ERR EPERM"
    limit = os.path.join(vr.inspect(name)["Cgroup"]["Paths"]["memory"], "memory.limit_in_bytes")
    with open(limit) as f:
        assert int(f.read()) == 64 << 20
    vr.release(p)
    name = vr.name()
    p = vr.popen(["--memory", "64M", "--privileged", "--", "sh", "-c",
                  f"/usr/bin/python3 {PROBES} mount_cgroup {1 << 30}; read x"], name=name,
                 stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "OK raised"
    limit = os.path.join(vr.inspect(name)["Cgroup"]["Paths"]["memory"], "memory.limit_in_bytes")
    with open(limit) as f:
        assert int(f.read()) == 1 << 30
    vr.release(p)
    vr.assert_nothing_left(name)


# --- system calls -------------------------------------------------------------------------
def test_escape_kernel_calls(vr):
    """Modules, reboot(2), the keyring, bpf(2): EPERM by seccomp and capabilities."""
    def modules():  # a kernel without module support has no /proc/modules
        return open("/proc/modules").read() if os.path.exists("/proc/modules") else None
    before = modules()
    calls = [("init_module",), ("reboot",), ("keyctl",), ("bpf",)]
    assert probes(vr, calls) == ["ERR EPERM"] * 4
    out = probes(vr, calls, opts=["--privileged"])
    # Past the permission checks: a non-module (or ENOSYS: no module support), a reboot
    # command a pid namespace refuses.
    assert out[0].startswith("ERR") and out[0] != "ERR EPERM", out
    assert out[1] == "ERR EINVAL"
    assert out[2].startswith("OK keyring") and out[3] == "OK map created", out
    # The keyring needs no capability: the seccomp filter alone stands in the way.
    assert one(vr, "keyctl", opts=["--security-opt", "seccomp=unconfined"]).startswith("OK")
    assert one(vr, "reboot", opts=["--cap-add", "SYS_BOOT"]) == "ERR EINVAL"
    assert modules() == before


def test_escape_open_by_handle(vr, harness):
    """Shocker: the host's root inode by its handle, through a volume on that file system."""
    import escape_probes
    vol = harness.mkdir("vol")
    require(os.stat(vol).st_dev == os.stat("/").st_dev, "the test dir is not on the root fs")
    htype, hexdata = escape_probes.handle_of("/")
    attempt = ("open_by_handle", htype, hexdata, "/vol")
    assert one(vr, *attempt, opts=["-v", f"{vol}:/vol"]) == "ERR EPERM"
    out = one(vr, *attempt, opts=["-v", f"{vol}:/vol", "--cap-add", "DAC_READ_SEARCH"])
    assert out == "OK " + " ".join(sorted(os.listdir("/")))


def test_escape_user_namespace(vr):
    assert one(vr, "unshare_mount") == "ERR EPERM"
    assert one(vr, "unshare_mount", opts=["--security-opt", "seccomp=unconfined"]) == \
        "OK mounted in a user namespace"
    assert one(vr, "unshare_mount", opts=["--cap-add", "SYS_ADMIN"]) == \
        "OK mounted in a user namespace"


def test_escape_ptrace_outside_impossible(vr):
    """No host process is in the container's pid namespace, privileged or not."""
    me = os.getpid()
    for opts in ([], ["--privileged"]):
        out = probes(vr, [("ptrace", me), ("kill0", me), ("proc", me, "fd")], opts=opts)
        assert out == ["ERR ESRCH", "ERR ESRCH", "ERR ENOENT"], (opts, out)


def test_init_out_of_reach(vr):
    """PID 1 runs as the same user: it must hold no capability, fd or memory worth taking."""
    name = vr.name()
    attempts = [("ptrace", 1), ("proc", 1, "fd"), ("proc", 1, "root"), ("proc", 1, "mem"),
                ("proc", 1, "environ")]
    script = "; ".join(f"/usr/bin/python3 {PROBES} " + " ".join(map(str, a)) for a in attempts)
    p = vr.popen(["--", "sh", "-c", script + "; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' "
                  "/proc/1/status; tr '\\0' ' ' < /proc/1/cmdline; echo; read x"], name=name,
                 stdin=subprocess.PIPE)
    out = [p.stdout.readline().rstrip("\n") for _ in range(len(attempts) + 5)]
    assert out[:5] == ["ERR EPERM", "ERR EACCES", "ERR EACCES", "ERR EACCES", "ERR EACCES"], out
    assert out[5:9] == ["CapEff:\t0000000000000020", "CapBnd:\t0000000000000020",
                        "NoNewPrivs:\t1", "Seccomp:\t2"], out
    assert out[9].strip() == "veneer-init", out
    init = vr.inspect(name)["Pid"]
    assert sorted(int(x) for x in os.listdir(f"/proc/{init}/fd")) == [0, 1, 2]
    vr.release(p)
    # With CAP_SYS_PTRACE the command may trace PID 1 (as any process of its own), and
    # finds nothing of the host there.
    out = probes(vr, [("ptrace", 1), ("proc", 1, "fd")], opts=["--cap-add", "SYS_PTRACE"])
    assert out == ["OK attached", "OK 0 1 2"], out


def test_no_new_privileges(vr, public_dir):
    suid = os.path.join(public_dir, "suid-id")
    shutil.copy("/usr/bin/id", suid)
    os.chmod(suid, 0o4755)
    r = vr.run(["-u", "1000", "--", suid, "-u"])
    assert r.stdout.strip() == "0", r.stderr  # set-user-ID root works without it ...
    r = vr.run(["-u", "1000", "--security-opt", "no-new-privileges", "--", suid, "-u"])
    assert r.stdout.strip() == "1000", r.stderr  # ... and grants nothing with it


def test_seccomp_profile_file(vr, harness):
    """A profile of one's own: Docker's format, conditions on the container's capabilities."""
    prof = harness.path("profile.json")
    with open(prof, "w") as f:
        json.dump({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errno": "EACCES"},
            {"names": ["fchmodat", "chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}}]}, f)
    script = "mkdir /tmp/x 2>&1; chmod 600 /etc/hostname 2>&1; echo done"
    r = vr.run(["--security-opt", f"seccomp={prof}", "--", "sh", "-c", script])
    assert "Permission denied" in r.stdout.splitlines()[0]
    assert "Operation not permitted" in r.stdout.splitlines()[1]
    r = vr.run(["--security-opt", f"seccomp={prof}", "--cap-add", "SYS_ADMIN", "--", "sh", "-c",
                script])
    assert r.stdout.splitlines()[1:] == ["done"], r.stdout


# --- other containers and veneer ----------------------------------------------------------
def test_other_containers_hidden(vr, harness):
    """Nothing of another container through the base layer, whichever started first."""
    ua, ub = harness.mkdir("upper-a"), harness.path("upper-b")
    a = vr.popen(["--upper", ua, "--", "sh", "-c", "echo a > /a.txt; echo ready; read x; "
                  f"ls -A {ub} | wc -l; cat {ub}/b.txt 2>&1; ls -A {vr.state} | wc -l; "
                  "ls -A /run/veneer-hide 2>/dev/null | wc -l"], stdin=subprocess.PIPE)
    assert a.stdout.readline().strip() == "ready"
    assert open(os.path.join(ua, "a.txt")).read() == "a\n"
    # B starts later, on an --upper that did not exist when A started.
    r = vr.run(["--upper", ub, "--", "sh", "-c", f"echo b > /b.txt; cat {ua}/a.txt 2>&1; "
                f"ls -A {ua} | wc -l; ls -A {vr.state} | wc -l"])
    lines = r.stdout.splitlines()
    assert "No such file" in lines[0] and lines[1:] == ["0", "0"], r.stdout
    assert open(os.path.join(ub, "b.txt")).read() == "b\n"
    # A, started first, sees nothing of B's upper either.
    a.stdin.write("\n")
    a.stdin.flush()
    out, _ = vr.communicate(a)
    lines = out.splitlines()
    assert lines[0] == "0" and "No such file" in lines[1], out
    assert lines[2:] == ["0", "0"], out
    # The opt-in: a volume names it.
    r = vr.run(["-v", f"{ub}:/peek:ro", "--", "cat", "/peek/b.txt"])
    assert r.stdout == "b\n", r.stderr


def test_kept_upper_hidden_from_other_state_dir(vr, harness):
    kept = vr.name()
    r = vr.run(["--keep", "--", "sh", "-c", "echo kept > /kept.txt"], name=kept)
    assert r.returncode == 0, r.stderr
    upper = vr.inspect(kept)["GraphDriver"]["Data"]["UpperDir"]
    assert open(os.path.join(upper, "kept.txt")).read() == "kept\n"
    other = Runner(harness, vr.bin, None)
    other.state = harness.mkdir("state-2")
    r = other.run(["--", "sh", "-c", f"cat {upper}/kept.txt 2>&1; ls -A {vr.state} | wc -l"])
    assert "No such file" in r.stdout and r.stdout.splitlines()[1] == "0", r.stdout
    # --cleanup keeps a kept upper; removing it by hand ends the hiding's purpose.
    shutil.rmtree(os.path.join(vr.state, kept))


def test_user_mask(vr, harness):
    d = harness.mkdir("secret-dir")
    write(os.path.join(d, "key"), "secret\n")
    r = vr.run(["--mask", d, "--mask", "/etc/hostname", "--mask", "/no/such/path", "--", "sh",
                "-c", f"ls -A {d} | wc -l; wc -c < /etc/hostname; touch {d}/x 2>&1 | "
                "grep -c 'Read-only'"])
    assert r.stdout.split() == ["0", "0", "1"], r.stdout + r.stderr


# --- bad input ----------------------------------------------------------------------------
def test_confinement_bad_input(vr, harness):
    bad_profile = harness.path("bad.json")
    with open(bad_profile, "w") as f:
        f.write('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], '
                '"action": "SCMP_ACT_ALLOW"}, {"names": ["mount"], "action": "SCMP_ACT_BOOM"}]}')
    regular = harness.path("regular")
    write(regular, "x")
    cases = [
        (["--cap-add", "NET_FOO"], 121, "'NET_FOO'"),
        (["--cap-drop", "sys admin"], 121, "'sys admin'"),
        (["--cap-add", "NET_ADMIN", "--cap-drop", "NET_ADMIN"], 121, "CAP_NET_ADMIN"),
        (["--security-opt", "apparmor=x"], 121, "'apparmor=x'"),
        (["--security-opt", "seccomp=" + harness.path("missing.json")], 122, "missing.json"),
        (["--security-opt", "seccomp=" + bad_profile], 121,
         "syscalls[1] (\"mount\"): unknown action 'SCMP_ACT_BOOM'"),
        (["--device", "dev/fuse"], 121, "'dev/fuse'"),
        (["--device", "/dev/fuse:/etc/fuse"], 121, "/dev/fuse:/etc/fuse"),
        (["--device", f"{regular}:/dev/x"], 122, "not a character or block device"),
        (["--device", "/dev/no-such-device"], 122, "/dev/no-such-device"),
        (["--mask", "relative"], 121, "'relative'"),
    ]
    if not host_cap_bounding() & (1 << 24):
        cases.append((["--cap-add", "SYS_RESOURCE"], 123, "CAP_SYS_RESOURCE"))
    for args, code, needle in cases:
        name = vr.name()
        r = vr.run(args + ["--", "true"], name=name)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert r.stderr.count("veneer-run:") == 1, r.stderr
        assert os.listdir(vr.state) == [] and cgroup_dirs(name) == []
