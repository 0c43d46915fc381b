# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-run end to end: real namespaces, cgroups, veneer-unionfs and veneer-procfs mounts.

Every test uses its own --state-dir under its tmp dir (and, where /proc matters,
its own veneer-procfs instance through --procfs-mount; the others run with
--no-procfs), and checks that nothing is left behind: no state, no cgroup, no
union daemon, no mount.
"""
import json
import os
import select
import signal
import stat
import subprocess
import time

import pytest

from veneer_harness import (
    SANITIZER_MARKERS,
    build_path,
    mounted_at,
    pids_mentioning,
    remove_cgroup,
    require,
    sanitizer_env,
)

CGROUP_ROOT = "/sys/fs/cgroup"
CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids")


def alive(pid):
    """A process that exists and is not a zombie (nor exiting)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def proc_info(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return st + " | " + f.read().replace(b"\0", b" ").decode()
    except OSError as e:
        return str(e)


def cgroup_dirs(name):
    return [p for p in (os.path.join(CGROUP_ROOT, c, f"veneer-{name}") for c in CONTROLLERS)
            if os.path.isdir(p)]


class Runner:
    """Runs veneer-run with a private state dir and procfs instance; undoes all at teardown."""

    def __init__(self, harness, run_bin, procfs_mount):
        self.h = harness
        self.bin = run_bin
        self.state = harness.mkdir("state")
        self.procfs = procfs_mount
        self.unionfs = build_path("unionfs/veneer-unionfs")
        self.names = []
        self.procs = []
        self.stderrs = []
        self._n = 0
        harness.defer(self.teardown)

    def name(self):
        self._n += 1
        n = f"t{os.getpid()}-{self._n}"
        self.names.append(n)
        return n

    def argv(self, args, name=None, procfs=True):
        a = [self.bin, "--state-dir", self.state, "--unionfs", self.unionfs]
        if procfs and self.procfs:
            a += ["--procfs-mount", self.procfs]
        elif procfs is not None:
            a += ["--no-procfs"]
        if name:
            a += ["--name", name]
        return a + list(args)

    def run(self, args, name=None, timeout=120, procfs=True, **kw):
        name = name if name is not None else self.name()
        r = subprocess.run(self.argv(args, name, procfs), capture_output=True, text=True,
                           timeout=timeout, env=sanitizer_env(), stdin=subprocess.DEVNULL, **kw)
        self.stderrs.append(r.stderr)
        self.check_sanitizer(r.stderr)
        return r

    def popen(self, args, name=None, procfs=True, **kw):
        name = name if name is not None else self.name()
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(self.argv(args, name, procfs), text=True, env=sanitizer_env(),
                             start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def communicate(self, p, timeout=60):
        out, err = p.communicate(timeout=timeout)
        self.stderrs.append(err)
        self.check_sanitizer(err)
        return out, err

    def release(self, p):
        """Let a command that waits for a line on stdin finish; it must exit 0."""
        p.stdin.write("\n")
        p.stdin.flush()
        self.communicate(p)
        assert p.returncode == 0

    @staticmethod
    def check_sanitizer(err):
        for m in SANITIZER_MARKERS:
            assert m not in (err or ""), f"sanitizer report:\n{err}"

    def inspect(self, name):
        r = subprocess.run([self.bin, "--state-dir", self.state, "--inspect", name],
                           capture_output=True, text=True, timeout=30, env=sanitizer_env())
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def wait_state(self, name, timeout=30):
        path = os.path.join(self.state, name, "state.json")
        end = time.time() + timeout
        while time.time() < end:
            try:
                with open(path) as f:
                    st = json.load(f)
                if st.get("Status") == "running":
                    return st
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise AssertionError(f"container {name} did not start")

    def assert_nothing_left(self, name):
        assert not os.path.exists(os.path.join(self.state, name)), \
            os.listdir(os.path.join(self.state, name))
        assert cgroup_dirs(name) == []
        assert pids_mentioning(os.path.join(self.state, name)) == []

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # What a killed launcher left: the launcher's own --cleanup, then by force.
        subprocess.run([self.bin, "--state-dir", self.state, "--cleanup"], capture_output=True,
                       timeout=60)
        for pid, _ in pids_mentioning(self.state):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for n in self.names:
            for d in cgroup_dirs(n):
                remove_cgroup(d)


@pytest.fixture
def vr(harness, run_bin, need_fuse):
    """veneer-run with --no-procfs: the tests of everything but /proc."""
    require(os.access(build_path("unionfs/veneer-unionfs"), os.X_OK), "veneer-unionfs is not built")
    return Runner(harness, run_bin, None)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def busybox_rootfs(harness):
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    tar = harness.path("busybox.tar")
    subprocess.run([os.path.join(os.path.dirname(__file__), "fixtures", "busybox-rootfs.sh"), tar],
                   check=True)
    root = harness.mkdir("busybox")
    subprocess.run(["tar", "-xf", tar, "-C", root], check=True)
    return root


# --- limits ------------------------------------------------------------------------------
def test_limits_in_cgroup_and_removed(vr):
    name = vr.name()
    p = vr.popen(["--memory", "64M", "--cpus", "1.5", "--cpuset-cpus", "0", "--pids-limit", "50",
                  "--", "sh", "-c", "echo ready; nproc; read x"], name=name,
                 stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ready"
    assert p.stdout.readline().strip() == "1"  # the cpuset
    st = vr.inspect(name)
    paths = st["Cgroup"]["Paths"]

    def read(c, f):
        with open(os.path.join(paths[c], f)) as fh:
            return fh.read().strip()
    assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
    assert read("cpu", "cpu.cfs_quota_us") == "150000"
    assert read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpuset", "cpuset.cpus") == "0"
    assert read("pids", "pids.max") == "50"
    assert str(st["Pid"]) in read("memory", "cgroup.procs").split()
    assert st["Limits"] == {"Memory": 64 << 20, "NanoCpus": 1500000000, "CpuPeriod": 100000,
                            "CpuQuota": 150000, "CpusetCpus": "0", "PidsLimit": 50}
    vr.release(p)
    vr.assert_nothing_left(name)


def test_limits_enforced(vr):
    require(os.access("/usr/bin/python3", os.X_OK), "no /usr/bin/python3 in the base layer")
    r = vr.run(["--memory", "64M", "--", "/usr/bin/python3", "-c",
                "b = bytearray(300 << 20); print('survived')"])
    assert r.returncode == 128 + signal.SIGKILL, (r.stdout, r.stderr)  # the OOM killer
    assert "survived" not in r.stdout
    forks = ("import os, time\n"
             "n = 0\n"
             "try:\n"
             "    for i in range(50):\n"
             "        if os.fork() == 0:\n"
             "            time.sleep(1)\n"
             "            os._exit(0)\n"
             "        n += 1\n"
             "except OSError as e:\n"
             "    print(n, e.errno)\n")
    r = vr.run(["--pids-limit", "8", "--", "/usr/bin/python3", "-c", forks])
    assert r.returncode == 0, r.stderr
    # init + python + 6 children = 8 tasks, then EAGAIN.
    assert r.stdout.split() == ["6", "11"]


# --- the union root file system ------------------------------------------------------------
def test_upper_kept_and_seen_by_second_run(vr, harness):
    upper = harness.path("myupper")
    base_file = harness.path("base", "victim.txt")
    write(base_file, "from the base layer\n")
    write(harness.path("base", "keep.txt"), "stays\n")
    r = vr.run(["--upper", upper, "--", "sh", "-c",
                f"echo hello > /veneer-new.txt && rm {base_file} && "
                f"test ! -e {base_file} && cat {os.path.dirname(base_file)}/keep.txt"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "stays\n"
    # The write landed in --upper, the deletion is only a whiteout there.
    with open(os.path.join(upper, "veneer-new.txt")) as f:
        assert f.read() == "hello\n"
    assert not os.path.exists("/veneer-new.txt")
    with open(base_file) as f:
        assert f.read() == "from the base layer\n"
    wh = upper + base_file
    st = os.lstat(wh)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0, "expected a 0/0 whiteout in --upper"
    r = vr.run(["--upper", upper, "--", "sh", "-c",
                f"cat /veneer-new.txt; test -e {base_file} && echo BACK || echo GONE"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\nGONE\n"


def test_upper_on_another_filesystem(vr, harness):
    import shutil
    import tempfile
    require(os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != os.stat(vr.state).st_dev,
            "/dev/shm is not a separate file system")
    top = tempfile.mkdtemp(prefix="veneer-run-upper-", dir="/dev/shm")
    harness.defer(shutil.rmtree, top, True)
    upper = os.path.join(top, "upper")
    r = vr.run(["--upper", upper, "--", "sh", "-c", "echo shm > /veneer-shm.txt"])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(upper, "veneer-shm.txt")) as f:
        assert f.read() == "shm\n"
    assert os.listdir(top) == ["upper"]  # the work dir beside it is gone again


def test_upper_in_use_refused(vr, harness):
    upper = harness.mkdir("shared-upper")
    p = vr.popen(["--upper", upper, "--", "sh", "-c", "echo ready; read x"],
                 stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ready"
    name = vr.name()
    r = vr.run(["--upper", upper, "--", "true"], name=name)
    assert r.returncode == 122, r.stderr
    assert "in use" in r.stderr and upper in r.stderr
    assert not os.path.exists(os.path.join(vr.state, name))
    vr.release(p)
    assert vr.run(["--upper", upper, "--", "true"]).returncode == 0


def test_fresh_upper_removed_unless_keep(vr):
    name = vr.name()
    r = vr.run(["--", "sh", "-c", "echo x > /veneer-fresh.txt"], name=name)
    assert r.returncode == 0, r.stderr
    vr.assert_nothing_left(name)
    kept = vr.name()
    r = vr.run(["--keep", "--", "sh", "-c", "echo kept > /veneer-fresh.txt"], name=kept)
    assert r.returncode == 0, r.stderr
    st = vr.inspect(kept)
    assert st["Status"] == "exited" and st["ExitCode"] == 0
    with open(os.path.join(st["GraphDriver"]["Data"]["UpperDir"], "veneer-fresh.txt")) as f:
        assert f.read() == "kept\n"
    # --cleanup leaves a kept upper alone.
    subprocess.run([vr.bin, "--state-dir", vr.state, "--cleanup"], check=True,
                   capture_output=True)
    assert os.path.exists(os.path.join(st["GraphDriver"]["Data"]["UpperDir"], "veneer-fresh.txt"))
    assert cgroup_dirs(kept) == []


def test_layers_leftmost_on_top(vr, harness):
    base = busybox_rootfs(harness)
    top = harness.mkdir("top")
    write(os.path.join(top, "etc", "motd"), "top layer\n")
    write(os.path.join(base, "etc", "motd"), "base layer\n")
    write(os.path.join(base, "etc", "only-base"), "base\n")
    r = vr.run(["--layers", f"{top}:{base}", "--", "sh", "-c",
                "cat /etc/motd /etc/only-base; rm /etc/only-base; ls /etc"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("top layer\nbase\n")
    assert "only-base" not in r.stdout.split("\n", 2)[2]
    assert os.path.exists(os.path.join(base, "etc", "only-base"))


# --- PID 1 ------------------------------------------------------------------------------
def test_orphaned_zombies_reaped(vr):
    script = ("for i in 1 2 3 4 5; do sh -c 'sleep 0.2 & exit 0'; done; sleep 1.5; "
              "ps -eo pid=,ppid=,stat=,comm=")
    r = vr.run(["--", "sh", "-c", script])
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.strip().splitlines()]
    assert rows and all("Z" not in row[2] for row in rows), r.stdout
    # Only init, the shell and ps are left.
    assert {row[0] for row in rows} >= {"1"}
    assert len(rows) == 3, r.stdout


def test_exit_status_and_signal_status(vr):
    assert vr.run(["--", "sh", "-c", "exit 7"]).returncode == 7
    assert vr.run(["--", "sh", "-c", "kill -SEGV $$"]).returncode == 128 + signal.SIGSEGV
    assert vr.run(["--", "true"]).returncode == 0


def test_signals_forwarded_to_command(vr):
    script = ('for s in HUP USR1 USR2 WINCH QUIT INT; do trap "echo got $s" $s; done; '
              'trap "echo got TERM; exit 3" TERM; echo ready; '
              'while :; do sleep 0.05; done')
    p = vr.popen(["--", "sh", "-c", script])
    assert p.stdout.readline().strip() == "ready"
    sent = [signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGQUIT,
            signal.SIGINT]
    got = []
    for s in sent:
        os.kill(p.pid, s)
        line = p.stdout.readline().strip()
        got.append(line)
    os.kill(p.pid, signal.SIGTERM)
    out, err = vr.communicate(p)
    assert got == [f"got {signal.Signals(s).name[3:]}" for s in sent], err
    assert out.strip() == "got TERM"
    assert p.returncode == 3


# --- bad input --------------------------------------------------------------------------
def test_bad_input_distinct_codes_nothing_created(vr, harness):
    cases = [
        (["--bogus", "true"], 121, "--bogus"),
        (["--memory", "12Q", "true"], 121, "12Q"),
        (["--cpus", "abc", "true"], 121, "abc"),
        (["--net", "bridge", "true"], 121, "bridge"),
        ([], 121, "COMMAND"),
        (["--layers", harness.path("missing-layer"), "true"], 122, "missing-layer"),
        (["--", "veneer-no-such-command"], 127, "veneer-no-such-command"),
        (["--", "/etc/passwd"], 126, "/etc/passwd"),
        (["-v", "relative:/x", "true"], 121, "relative:/x"),
    ]
    for args, code, needle in cases:
        name = vr.name()
        r = vr.run(args, name=name)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert r.stderr.count("veneer-run:") == 1, r.stderr
        assert os.listdir(vr.state) == []
        assert cgroup_dirs(name) == []
    r = subprocess.run([vr.bin, "--state-dir", vr.state, "--inspect", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 124 and "nope" in r.stderr
    r = subprocess.run([vr.bin, "--state-dir", "/etc/passwd/sub", "true"], capture_output=True,
                       text=True)
    assert r.returncode == 122 and "/etc/passwd/sub" in r.stderr
    helptext = subprocess.run([vr.bin, "--help"], capture_output=True, text=True).stdout
    for code in ("121", "122", "123", "124", "125", "126", "127"):
        assert code in helptext


def test_env_workdir_user(vr):
    r = vr.run(["-e", "FOO=bar baz", "-e", "HOME=/home/x", "-w", "/veneer/work/dir",
                "-u", "1234:4321", "--hostname", "boxy", "--", "sh", "-c",
                'echo "$FOO|$HOME|$(pwd)|$(id -u):$(id -g)|$(hostname)|$HOSTNAME"'])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "bar baz|/home/x|/veneer/work/dir|1234:4321|boxy|boxy"


def test_network_none_and_host(vr):
    r = vr.run(["--net", "none", "--", "cat", "/proc/net/dev"])
    assert r.returncode == 0, r.stderr
    ifaces = {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]}
    assert ifaces == {"lo"}
    r = vr.run(["--net", "none", "--", "sh", "-c", "cat /sys/class/net/lo/operstate "
                "/sys/class/net/lo/flags; touch /sys/x 2>&1 || echo RO"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert int(lines[1], 16) & 1, "loopback is up"
    assert "RO" in r.stdout
    with open("/proc/net/dev") as f:
        host = {line.split(":")[0].strip() for line in f.read().splitlines()[2:]}
    r = vr.run(["--net", "host", "--", "cat", "/proc/net/dev"])
    assert {line.split(":")[0].strip() for line in r.stdout.splitlines()[2:]} == host


def test_dev_is_minimal(vr):
    r = vr.run(["--", "sh", "-c", "ls /dev; echo x > /dev/null; head -c 4 /dev/zero | wc -c; "
                "head -c 4 /dev/urandom | wc -c; grep -E ' /dev/(pts|shm) ' /proc/mounts; "
                "echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || echo PROCSYS-RO"])
    assert r.returncode == 0, r.stderr
    names = set(r.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"} <= names
    assert "sda" not in names and "vda" not in names and "fuse" not in names
    assert "devpts" in r.stdout and "tmpfs" in r.stdout
    assert "PROCSYS-RO" in r.stdout  # /proc/sys is not namespaced: read-only


# --- volumes ------------------------------------------------------------------------------
def test_volume_copy_data_ro_nocopy(vr, harness):
    image_dir = harness.path("imgdir")
    write(os.path.join(image_dir, "seed.txt"), "seed\n")
    write(os.path.join(image_dir, "sub", "deep.txt"), "deep\n")
    os.chmod(os.path.join(image_dir, "seed.txt"), 0o640)
    os.chmod(image_dir, 0o750)
    fresh = harness.path("vol-fresh")  # does not exist yet: created and filled
    nocopy = harness.mkdir("vol-nocopy")
    ro = harness.mkdir("vol-ro")
    write(os.path.join(ro, "ro.txt"), "read only\n")
    r = vr.run(["-v", f"{fresh}:{image_dir}", "-v", f"{nocopy}:/veneer-vol/nocopy:nocopy",
                "-v", f"{ro}:/veneer-vol/ro:ro", "--", "sh", "-c",
                f"cat {image_dir}/seed.txt {image_dir}/sub/deep.txt; "
                f"echo written > {image_dir}/new.txt; "
                "cat /veneer-vol/ro/ro.txt; echo no > /veneer-vol/ro/x 2>/dev/null || echo EROFS; "
                "ls -A /veneer-vol/nocopy | wc -l"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "seed\ndeep\nread only\nEROFS\n0\n"
    with open(os.path.join(fresh, "seed.txt")) as f:
        assert f.read() == "seed\n"
    assert stat.S_IMODE(os.stat(os.path.join(fresh, "seed.txt")).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o750
    with open(os.path.join(fresh, "new.txt")) as f:
        assert f.read() == "written\n"
    assert not os.path.exists(os.path.join(ro, "x"))
    # A non-empty volume is never overwritten by the image.
    write(os.path.join(image_dir, "seed.txt"), "changed\n")
    r = vr.run(["-v", f"{fresh}:{image_dir}", "--", "cat", f"{image_dir}/seed.txt"])
    assert r.stdout == "seed\n"


# --- state ------------------------------------------------------------------------------
def test_list_and_inspect_match_mounts(vr):
    name = vr.name()
    p = vr.popen(["--memory", "128M", "--", "sh", "-c", "echo inside > /veneer-x; echo ready; "
                  "cat /proc/self/mountinfo; echo END; read x"], name=name,
                 stdin=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ready"
    inner = []
    for line in iter(p.stdout.readline, ""):
        if line.strip() == "END":
            break
        inner.append(line)
    r = subprocess.run([vr.bin, "--state-dir", vr.state, "--list"], capture_output=True,
                       text=True, check=True)
    listed = json.loads(r.stdout)
    assert [c["Id"] for c in listed] == [name]
    st = vr.inspect(name)
    assert listed[0]["GraphDriver"] == st["GraphDriver"]
    assert st["Running"] is True and st["Status"] == "running"
    assert st["Command"][0] == "sh"
    data = st["GraphDriver"]["Data"]
    assert data["LowerDir"] == "/"
    assert data["MergedDir"] == os.path.join(vr.state, name, "merged")
    with open(os.path.join(data["UpperDir"], "veneer-x")) as f:
        assert f.read() == "inside\n"
    # The union is mounted at MergedDir in the launcher's mount namespace, by UnionPid ...
    with open(f"/proc/{st['UnionPid']}/mountinfo") as f:
        union = [line.split() for line in f if line.split()[4] == data["MergedDir"]]
    assert union and union[0][union[0].index("-") + 1].startswith("fuse")
    # ... and it is the container's root.
    roots = [line.split() for line in inner if line.split()[4] == "/"]
    assert roots and roots[0][roots[0].index("-") + 1] == union[0][union[0].index("-") + 1]
    with open(f"/proc/{st['Pid']}/cgroup") as f:
        assert f"veneer-{name}" in f.read()
    # Nothing in the host's mount table.
    assert not mounted_at(data["MergedDir"])
    vr.release(p)
    vr.assert_nothing_left(name)
    assert json.loads(subprocess.run([vr.bin, "--state-dir", vr.state, "--list"],
                                     capture_output=True, text=True).stdout) == []


# --- clean-up ------------------------------------------------------------------------------
def _command_pid(init_pid, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        with open(f"/proc/{init_pid}/task/{init_pid}/children") as f:
            kids = f.read().split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    raise AssertionError("no command process")


def test_sigkill_of_command_leaves_nothing(vr):
    name = vr.name()
    p = vr.popen(["--memory", "64M", "--", "sh", "-c", "echo ready; exec sleep 100"], name=name)
    assert p.stdout.readline().strip() == "ready"
    st = vr.wait_state(name)
    os.kill(_command_pid(st["Pid"]), signal.SIGKILL)
    vr.communicate(p)
    assert p.returncode == 128 + signal.SIGKILL
    vr.assert_nothing_left(name)
    assert not alive(st["UnionPid"])


def test_sigterm_to_launcher_leaves_nothing(vr):
    name = vr.name()
    # The command ignores SIGTERM: after --stop-timeout the container is killed.
    p = vr.popen(["--stop-timeout", "1", "--pids-limit", "20", "--", "sh", "-c",
                  "trap '' TERM; echo ready; while :; do sleep 0.1; done"], name=name)
    assert p.stdout.readline().strip() == "ready"
    st = vr.wait_state(name)
    os.kill(p.pid, signal.SIGTERM)
    vr.communicate(p, timeout=30)
    assert p.returncode == 128 + signal.SIGKILL
    vr.assert_nothing_left(name)
    assert not alive(st["UnionPid"])


def test_sigkill_of_launcher_then_cleanup(vr, harness):
    name = vr.name()
    upper = harness.path("user-upper")
    p = vr.popen(["--memory", "64M", "--upper", upper, "--", "sh", "-c",
                  "echo mine > /veneer-data; echo ready; exec sleep 100"], name=name)
    assert p.stdout.readline().strip() == "ready"
    st = vr.wait_state(name)
    # A second, running container: --cleanup must leave it alone.
    other = vr.name()
    q = vr.popen(["--", "sh", "-c", "echo ready; read x"], name=other, stdin=subprocess.PIPE)
    assert q.stdout.readline().strip() == "ready"
    vr.wait_state(other)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    # The container dies with its launcher; the union daemon, cgroup and state remain ...
    end = time.time() + 10
    while alive(st["Pid"]) and time.time() < end:
        time.sleep(0.05)
    assert not alive(st["Pid"])
    assert cgroup_dirs(name)
    r = subprocess.run([vr.bin, "--state-dir", vr.state, "--cleanup"], capture_output=True,
                       text=True, timeout=60, env=sanitizer_env())
    vr.check_sanitizer(r.stderr)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [name]
    # ... until --cleanup.
    vr.assert_nothing_left(name)
    assert not alive(st["UnionPid"]), (proc_info(st["UnionPid"]), st, r.stderr)
    # The user's data stays; the other container runs on.
    with open(os.path.join(upper, "veneer-data")) as f:
        assert f.read() == "mine\n"
    assert vr.inspect(other)["Running"] is True
    q.stdin.write("\n")
    q.stdin.flush()
    vr.communicate(q)
    assert q.returncode == 0
    vr.assert_nothing_left(other)


def test_every_option_documented(run_bin):
    import re
    helptext = subprocess.run([run_bin, "--help"], capture_output=True, text=True).stdout
    opts = set(re.findall(r"(--[a-z][a-z-]+)", helptext))
    assert len(opts) > 25
    man = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "man",
                       "veneer-run.1")
    with open(man) as f:
        text = f.read().replace("\\-", "-")
    missing = sorted(o for o in opts if o not in text)
    assert missing == []
    for code in ("121", "122", "123", "124", "125", "126", "127"):
        assert f".B {code}" in text


def test_interactive_terminal(vr):
    """On a terminal: it is /dev/console inside, and ^C reaches the command once."""
    import fcntl
    import pty
    import termios
    master, slave = pty.openpty()

    def ctty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    script = ('tty; trap "echo got INT; exit 5" INT; echo ready; '
              'while :; do sleep 0.1; done')
    p = subprocess.Popen(vr.argv(["--", "sh", "-c", script], vr.name(), procfs=False),
                         stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         preexec_fn=ctty, env=sanitizer_env())
    vr.procs.append(p)
    os.close(slave)
    out = b""
    end = time.time() + 30

    def read_some():
        """What the terminal has within the deadline: b"" once it is past or the terminal closed."""
        left = end - time.time()
        if left <= 0 or not select.select([master], [], [], left)[0]:
            return b""
        try:
            return os.read(master, 4096)
        except OSError:  # EIO: the last writer closed the terminal
            return b""

    try:
        while b"ready" not in out:
            chunk = read_some()
            if not chunk:
                break
            out += chunk
        assert b"/dev/console" in out, out
        os.write(master, b"\x03")
        while True:
            chunk = read_some()
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert p.wait(30) == 5, out
    assert out.count(b"got INT") == 1, out
    vr.check_sanitizer(out.decode(errors="replace"))
