# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-procfs operated as its documentation says (issue 11): started again after an
unmount it mounts again while the old binds stay served; no local user can keep it from
starting; `veneer-procfs --restart MNT` replaces the worker without touching the holder, the
processes carry their role in their title and comm, and the restart recipe of README.md and
man/veneer-procfs.1 is this test's."""
import hashlib
import os
import shlex
import signal
import stat
import subprocess
import time

import pytest

from procfs_util import MiB, Container, limited_cgroups, meminfo_kb, procfs_bin, start_procfs
from veneer_harness import REPO, Mount, lazy_umount, mounted_at, require, sanitizer_env

RUNDIR = "/run/veneer-procfs"
NOBODY = 65534


@pytest.fixture
def procfs_env(harness, need_fuse, procfs_bin):
    require(os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/cpuset"),
            "needs cgroup v1 memory and cpuset hierarchies")
    return harness


def _total_kb(c, timeout=20):
    return meminfo_kb(c.run("cat /proc/meminfo", timeout=timeout), "MemTotal")


def _mounts_at(path):
    """How many mounts sit at path (a restart must never stack a second one)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if line.split()[4] == path)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def _titled(role, mnt):
    """Processes whose command line is exactly `veneer-procfs: ROLE MNT`."""
    want = f"veneer-procfs: {role} {mnt}"
    return sorted(int(e) for e in os.listdir("/proc") if e.isdigit() and _cmdline(e) == want)


def _mentioning(mnt):
    """veneer-procfs's processes (any role, any title) of mount point mnt."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or mnt not in _cmdline(e):
            continue
        try:
            if _comm(e) in ("veneer-procfs", "veneer-holder", "exe"):
                out.append(int(e))
        except OSError:
            pass
    return out


def _waiting():
    """Processes waiting for a FUSE answer (what keeps a connection alive)."""
    out = []
    for e in os.listdir("/proc"):
        try:
            with open(f"/proc/{e}/wchan") as f:
                if f.read().strip() == "request_wait_answer":
                    out.append(_cmdline(e)[:80])
        except OSError:
            pass
    return out


def _wait_gone(mnt, timeout=20):
    """Once the last mount and bind of mnt is gone, its holders and workers exit."""
    deadline = time.time() + timeout
    while _mentioning(mnt) and time.time() < deadline:
        time.sleep(0.05)
    assert not _mentioning(mnt), ([_cmdline(p) for p in _mentioning(mnt)], _waiting())


def _abort_leftovers(mnt):
    """Killing every holder and worker of mnt ends its connection: a reader stuck on a
    request nobody will answer gets ENOTCONN and exits (teardown of a failed test)."""
    for pid in _mentioning(mnt):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _bind_file(h, src, name):
    dst = h.path(name)
    open(dst, "w").close()
    subprocess.run(["mount", "--bind", src, dst], check=True)
    h.defer(lazy_umount, dst)
    return dst


def _free_kb(path):
    with open(path) as f:
        return meminfo_kb(f.read(), "MemTotal")


def test_start_after_unmount_mounts_again_and_old_binds_stay(procfs_env):
    """Item 1: `umount MNT` (or a killed worker and `umount -l MNT`, the lxcfs recipe), then
    the start command: the mount point is served again, by a new connection, while the
    containers' binds of the old one keep working; new containers bind the new mount."""
    h = procfs_env
    mnt = h.path("procfs")
    m = Mount(mnt, start_procfs(h, mnt))
    h.defer(h.umount, m)
    old = Container(h, mnt, limited_cgroups(h, mem=200 * MiB))
    host_bind = _bind_file(h, f"{mnt}/proc/meminfo", "meminfo-bind")
    assert _total_kb(old) == 200 * 1024
    host_kb = _free_kb("/proc/meminfo")
    assert _free_kb(host_bind) == host_kb

    # The documented stop, while the container runs: its binds keep the connection alive.
    subprocess.run(["umount", mnt], check=True)
    assert not mounted_at(mnt)
    assert _total_kb(old) == 200 * 1024
    # The documented start: a new mount (on main it attached to the old holder and exited 0
    # with nothing mounted).
    m.daemon = start_procfs(h, mnt)
    assert mounted_at(mnt) and _mounts_at(mnt) == 1
    new = Container(h, mnt, limited_cgroups(h, mem=160 * MiB))
    assert _total_kb(new) == 160 * 1024
    assert _total_kb(old) == 200 * 1024
    assert _free_kb(host_bind) == host_kb
    # Two connections now, each with its holder.
    assert len(_titled("holder", mnt)) == 2, [_cmdline(p) for p in _mentioning(mnt)]

    # The lxcfs recipe: the worker killed, the mount lazily detached, the start again.
    m.daemon.stop(signal.SIGKILL)
    subprocess.run(["umount", "-l", mnt], check=True)
    assert not mounted_at(mnt)
    m.daemon = start_procfs(h, mnt)
    assert mounted_at(mnt) and _mounts_at(mnt) == 1
    newest = Container(h, mnt, limited_cgroups(h, mem=120 * MiB))
    assert _total_kb(newest) == 120 * 1024
    # The killed worker's connection gets a worker from its holder (respawn_delay, 1 s).
    assert _total_kb(new) == 160 * 1024
    assert _total_kb(old) == 200 * 1024
    assert _free_kb(host_bind) == host_kb

    # Everything undone: the three connections end, and with them every holder and worker.
    for c in (old, new, newest):
        c.stop()
    subprocess.run(["umount", host_bind], check=True)
    h.umount(m)
    _wait_gone(mnt)


SQUAT = r"""
import os, socket, sys
name, mnt = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind(b"\0" + name.encode())
s.listen(1)
tried = []
for d in ("/run/veneer-procfs",):
    try:
        os.makedirs(d, exist_ok=True)
        t = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        t.bind(os.path.join(d, "planted"))
        tried.append(d + " ok")
    except OSError as e:
        tried.append(f"{d} {e.errno}")
print(" | ".join(tried), flush=True)
sys.stdin.read()
"""


def test_local_user_cannot_keep_it_from_starting(procfs_env):
    """Item 2: a local user (nobody) takes the rendezvous name of main's abstract socket
    first, and tries to plant a socket where the new one lives: veneer-procfs starts anyway,
    its rendezvous directory is root's and private; a directory others could write is
    refused with a message naming it, and nothing is mounted."""
    h = procfs_env
    require(subprocess.run(["which", "setpriv"], capture_output=True).returncode == 0,
            "setpriv (util-linux) is missing")
    mnt = h.path("procfs")
    os.makedirs(mnt)
    sum_ = hashlib.sha256(mnt.encode()).hexdigest()[:40]
    squatter = subprocess.Popen(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "/usr/bin/python3", "-c", SQUAT, f"veneer-procfs/{sum_}", mnt],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def stop_squatter():
        squatter.stdin.close()
        squatter.wait(10)
        squatter.stdout.close()
    h.defer(stop_squatter)
    tried = squatter.stdout.readline()
    assert f"{RUNDIR} 13" in tried, tried  # EACCES: not the user's to create or fill

    m = Mount(mnt, start_procfs(h, mnt))
    h.defer(h.umount, m)
    c = Container(h, mnt, limited_cgroups(h, mem=180 * MiB))
    assert _total_kb(c) == 180 * 1024
    st = os.lstat(RUNDIR)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    # A mount whose holder and worker were all killed leaves its names (nobody is left
    # to remove them); the next holder to exit sweeps them.
    dead = h.path("dead")
    dm = Mount(dead, start_procfs(h, dead))
    h.defer(h.umount, dm)
    dead_name = os.path.join(RUNDIR, "mnt-" + hashlib.sha256(dead.encode()).hexdigest()[:40])
    for p in _mentioning(dead):
        os.kill(p, signal.SIGKILL)
    _wait_gone(dead)
    assert os.path.lexists(dead_name)
    c.stop()
    h.umount(m)
    _wait_gone(mnt)
    assert not os.path.lexists(dead_name)

    # A rendezvous directory somebody else could write: refused, named, nothing mounted.
    # (In a mount namespace of its own with a private /run: the host's is left alone.)
    for prep, word in (("mkdir -m 0777 /run/veneer-procfs", "0777"),
                       (f"mkdir -m 0700 /run/veneer-procfs && chown {NOBODY} /run/veneer-procfs",
                        f"uid {NOBODY}")):
        script = (f"mount -t tmpfs -o mode=0755 run /run && {prep} || exit 99; "
                  f"{shlex.quote(procfs_bin())} -f {shlex.quote(mnt)}; rc=$?; "
                  f"grep -q ' {mnt} ' /proc/self/mountinfo && echo MOUNTED; exit $rc")
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=30, env=sanitizer_env())
        assert r.returncode == 1, (prep, r.returncode, r.stderr)
        assert RUNDIR in r.stderr and word in r.stderr, r.stderr
        assert "MOUNTED" not in r.stdout
    _wait_gone(mnt)


def _doc_restart_lines():
    """The restart recipe as README.md and man/veneer-procfs.1 give it."""
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    with open(os.path.join(REPO, "man", "veneer-procfs.1")) as f:
        man = f.read()
    section = readme.split("## veneer-procfs", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    examples = man.split(".SH EXAMPLES", 1)[1].split(".SH ", 1)[0].replace("\\-", "-")
    out = []
    for text in (block, examples):
        lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
        restart = [ln for ln in lines if "restart" in ln or "kill" in ln]
        assert len(restart) == 1, restart
        out.append(restart[0])
    return out


def test_restart_verb_names_and_documented_recipe(procfs_env):
    """Item 3: README's and the man page's restart recipe is `veneer-procfs --restart MNT`;
    run as written (the default mount point replaced by the test's), it starts a new
    worker from the holder, retires the old one (exit 0), keeps the holder and the mount
    (nothing stacked), and the container keeps reading. Holder and worker are titled
    `veneer-procfs: holder|worker MNT`; `pidof veneer-procfs` and `ps -C veneer-procfs`
    name the workers only, also after the holder was killed and re-created."""
    h = procfs_env
    readme, man = _doc_restart_lines()
    assert readme == man == "veneer-procfs --restart /var/lib/veneer/procfs", (readme, man)
    r = subprocess.run([procfs_bin(), "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and "--restart" in r.stdout

    mnt = h.path("procfs")
    m = Mount(mnt, start_procfs(h, mnt))
    h.defer(h.umount, m)
    c = Container(h, mnt, limited_cgroups(h, mem=210 * MiB))
    assert _total_kb(c) == 210 * 1024
    worker = m.daemon.proc.pid
    holders = _titled("holder", mnt)
    assert _titled("worker", mnt) == [worker], [_cmdline(p) for p in _mentioning(mnt)]
    assert len(holders) == 1
    assert _comm(worker) == "veneer-procfs" and _comm(holders[0]) == "veneer-holder"
    pidof = subprocess.run(["pidof", "veneer-procfs"], capture_output=True, text=True)
    assert worker in map(int, pidof.stdout.split()) and holders[0] not in map(
        int, pidof.stdout.split()), pidof.stdout
    ps = subprocess.run(["ps", "-C", "veneer-procfs", "-o", "pid="], capture_output=True,
                        text=True)
    assert worker in map(int, ps.stdout.split()) and holders[0] not in map(
        int, ps.stdout.split()), ps.stdout

    # The documented restart, while the container reads in a loop.
    log = h.path("reads.log")
    reader = c.popen("sh", "-c", f"while :; do grep ^MemTotal /proc/meminfo >> {log}; done",
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 20
    while (not os.path.exists(log) or os.path.getsize(log) == 0) and time.time() < deadline:
        time.sleep(0.02)
    argv = shlex.split(readme.replace("/var/lib/veneer/procfs", mnt))
    assert argv[0] == "veneer-procfs"
    r = subprocess.run([procfs_bin(), *argv[1:]], capture_output=True, text=True, timeout=60,
                       env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert m.daemon.wait(15) == 0, m.daemon.output()  # the old worker retired
    new = _titled("worker", mnt)
    assert len(new) == 1 and new[0] != worker, [_cmdline(p) for p in _mentioning(mnt)]
    assert str(new[0]) in r.stdout, r.stdout
    assert _titled("holder", mnt) == holders
    assert mounted_at(mnt) and _mounts_at(mnt) == 1
    before = os.path.getsize(log)
    time.sleep(0.5)
    assert os.path.getsize(log) > before and reader.poll() is None
    with open(log) as f:
        assert {ln.split()[1] for ln in f} == {str(210 * 1024)}

    # --restart with nothing there: an error naming the mount point, exit 1.
    other = h.mkdir("nothing")
    r = subprocess.run([procfs_bin(), "--restart", other], capture_output=True, text=True,
                       timeout=30, env=sanitizer_env())
    assert r.returncode == 1 and other in r.stderr, (r.returncode, r.stderr)

    # The holder killed: the worker re-creates it, titled and named as the first.
    os.kill(holders[0], signal.SIGKILL)
    deadline = time.time() + 10
    while time.time() < deadline and _titled("holder", mnt) in ([], holders):
        time.sleep(0.05)
    again = _titled("holder", mnt)
    assert len(again) == 1 and again != holders, [_cmdline(p) for p in _mentioning(mnt)]
    assert _comm(again[0]) == "veneer-holder"
    pidof = subprocess.run(["pidof", "veneer-procfs"], capture_output=True, text=True)
    assert again[0] not in map(int, pidof.stdout.split()), pidof.stdout
    # ... and the restart verb reaches it.
    r = subprocess.run([procfs_bin(), "--restart", mnt], capture_output=True, text=True,
                       timeout=60, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert _total_kb(c) == 210 * 1024
    assert _mounts_at(mnt) == 1

    reader.kill()
    c.stop()
    h.umount(m)
    _wait_gone(mnt)


def test_restarts_under_readers_lose_no_request(procfs_env):
    """A worker retiring while its threads read requests must answer every request it
    read: a request read from /dev/fuse cannot be interrupted, its reader would wait
    forever (libfuse drops a request read after the session was marked exited, which
    the retiring worker did before stopping its threads)."""
    h = procfs_env
    mnt = h.path("procfs")
    h.defer(_abort_leftovers, mnt)
    m = Mount(mnt, start_procfs(h, mnt, opts=["-o", "threads=8"]))
    h.defer(h.umount, m)
    c = Container(h, mnt, limited_cgroups(h, mem=230 * MiB))
    logs = [h.path(f"reads-{i}.log") for i in range(4)]
    readers = [c.popen("sh", "-c", f"while :; do head -c 64 /proc/meminfo >> {log}; done",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for log in logs]
    for _ in range(25):
        r = subprocess.run([procfs_bin(), "--restart", mnt], capture_output=True, text=True,
                           timeout=60, env=sanitizer_env())
        assert r.returncode == 0, r.stderr
    sizes = [os.path.getsize(log) for log in logs]
    time.sleep(1)
    stuck = [log for log, size in zip(logs, sizes) if os.path.getsize(log) == size]
    assert not stuck, f"{len(stuck)} of {len(logs)} readers wait for an answer that never comes"
    for p in readers:
        p.kill()
    c.stop()
    h.umount(m)
    _wait_gone(mnt)
