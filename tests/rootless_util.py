# SPDX-License-Identifier: GPL-2.0-or-later
"""An unprivileged user made for one test (test_run_rootless.py, test_unionfs_podman_rootless.py).

The user gets a world-traversable directory of its own, /dev/fuse opened to it when the
machine has it tighter than Debian's crw-rw-rw- (a FUSE mount made inside a user namespace
needs read-write access), and on request a subordinate id range in /etc/subuid and
/etc/subgid (newuidmap and newgidmap read them for rootless podman). All of it is undone at
the end, whether the test passed or failed: the user's processes and those running as its
subordinate ids are killed, the user and its subid lines removed, the directory deleted
and /dev/fuse given its mode back.
"""
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

from veneer_harness import SANITIZER_MARKERS, require, sanitizer_env

SUBID_COUNT = 65536
SUBID_FILES = ("/etc/subuid", "/etc/subgid")


def _proc_uid(pid):
    return os.stat(f"/proc/{pid}").st_uid


def processes_of(uids, zombies=False):
    """Pids of the processes running as one of uids (a range or a set)."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            if _proc_uid(e) not in uids:
                continue
            if not zombies:
                with open(f"/proc/{e}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
        except OSError:
            continue
        out.append(int(e))
    return out


def kill_processes_of(uids):
    for pid in processes_of(uids, zombies=True):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _free_subid_start():
    """The first id past every range /etc/subuid and /etc/subgid give (100000 at least)."""
    start = 100000
    for path in SUBID_FILES:
        try:
            with open(path) as f:
                for line in f:
                    parts = line.strip().split(":")
                    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                        start = max(start, int(parts[1]) + int(parts[2]))
        except FileNotFoundError:
            pass
    return start


def _subid_start(path, name):
    """The first id of name's first range in path (newuidmap maps that one first)."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] == name and int(parts[2]) >= SUBID_COUNT:
                    return int(parts[1])
    except FileNotFoundError:
        pass
    return None


def _add_subid_line(path, name, start):
    """Append "name:start:count" to path; returns how to undo it."""
    existed = os.path.exists(path)
    with open(path, "a") as f:
        f.write(f"{name}:{start}:{SUBID_COUNT}\n")
    if not existed:
        os.chmod(path, 0o644)

    def undo():
        try:
            with open(path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return
        keep = [ln for ln in lines if ln.split(":", 1)[0] != name]
        if not keep and not existed:
            os.unlink(path)
            return
        if keep != lines:
            with open(path, "w") as f:
                f.writelines(keep)
    return undo


class User:
    """pw: its passwd entry; top: its directory (0755, root's), home: top/home (the user's);
    subuid, subgid: the first id of its subordinate ranges (None when not asked for)."""

    def __init__(self, pw, top, home, subuid=None, subgid=None):
        self.pw = pw
        self.top = top
        self.home = home
        self.subuid = subuid
        self.subgid = subgid

    @property
    def uids(self):
        """The host uids its processes may run as: its own and its subordinate ones."""
        own = {self.pw.pw_uid}
        if self.subuid is None:
            return own
        return _UidSet(own, range(self.subuid, self.subuid + SUBID_COUNT))

    def mkdir(self, *parts, mode=0o755):
        """A directory below top owned by the user."""
        p = os.path.join(self.top, *parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        os.chown(p, self.pw.pw_uid, self.pw.pw_gid)
        return p

    def run(self, argv, env=None, timeout=120, check_sanitizer=True, **kw):
        """argv as the user (its own group only), the sanitizer options of the tests in its
        environment, no stdin; a sanitizer report on stderr fails the test."""
        base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/", "LANG": "C.UTF-8"}
        base.update(env or {})
        r = subprocess.run(argv, user=self.pw.pw_uid, group=self.pw.pw_gid, extra_groups=[],
                           env=sanitizer_env(base), capture_output=True, text=True,
                           timeout=timeout, cwd="/", stdin=subprocess.DEVNULL, **kw)
        if check_sanitizer:
            for m in SANITIZER_MARKERS:
                assert m not in r.stderr, r.stderr
        return r

    def processes(self):
        return processes_of(self.uids)


class _UidSet:
    def __init__(self, own, sub):
        self.own = own
        self.sub = sub

    def __contains__(self, uid):
        return uid in self.own or uid in self.sub


@contextlib.contextmanager
def unprivileged_user(prefix="vrtest", subids=False):
    """A User made for the duration of the with block (see the module's doc)."""
    require(os.geteuid() == 0, "needs root")
    require(shutil.which("useradd") is not None, "useradd (passwd) is not installed")
    require(os.path.exists("/dev/fuse"), "no /dev/fuse")
    name = f"{prefix}{os.getpid() % 100000}"
    subprocess.run(["userdel", name], capture_output=True)
    undo = []
    top = None
    mode = os.stat("/dev/fuse").st_mode & 0o777
    subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/sh", name], check=True,
                   capture_output=True)
    pw = pwd.getpwnam(name)
    user = User(pw, None, None)
    try:
        if subids:
            # useradd gives the user a range where the files exist (SUB_UID_COUNT of
            # login.defs); where they do not, the test adds one.
            starts = []
            for path in SUBID_FILES:
                start = _subid_start(path, name)
                if start is None:
                    start = _free_subid_start()
                    undo.append(_add_subid_line(path, name, start))
                starts.append(start)
            user.subuid, user.subgid = starts
        # A world-traversable place of the user's own.
        top = tempfile.mkdtemp(prefix=f"veneer-{prefix}-", dir="/tmp")
        os.chmod(top, 0o755)
        user.top = top
        user.home = user.mkdir("home")
        if mode & 0o006 != 0o006:
            os.chmod("/dev/fuse", 0o666)
        yield user
    finally:
        os.chmod("/dev/fuse", mode)
        # Twice: a process may fork while the first round kills.
        for _ in range(2):
            kill_processes_of(user.uids)
            time.sleep(0.2)
        subprocess.run(["userdel", name], capture_output=True)
        for u in reversed(undo):
            u()
        if top:
            subprocess.run(["rm", "-rf", "--one-file-system", top], capture_output=True)
