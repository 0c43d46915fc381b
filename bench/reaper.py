# SPDX-License-Identifier: GPL-2.0-or-later
"""Everything the benchmark starts is undone here: mounts, daemons, cgroups.

A Reaper is a stack of undo actions. Each mount, daemon and cgroup pushes one
when it is created and pops (runs) it when it is torn down normally; whatever
is left runs at exit, on an exception, or on Ctrl-C/SIGTERM. A final sweep
unmounts anything still below the workspace.
"""
import errno
import os
import signal
import subprocess
import threading
import time


def mountinfo():
    """(mount point, fstype, major:minor) of each mount in this namespace."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            mp = parts[4].encode().decode("unicode_escape")
            out.append((mp, parts[sep + 1], parts[2]))
    return out


def is_mounted(path, fstype_prefix=None):
    path = os.path.realpath(path)
    for mp, fstype, _ in mountinfo():
        if mp == path and (fstype_prefix is None or fstype.startswith(fstype_prefix)):
            return True
    return False


def mounts_below(root):
    root = os.path.realpath(root)
    return [mp for mp, _, _ in mountinfo() if mp == root or mp.startswith(root + "/")]


def umount(path, lazy_on_failure=True):
    r = subprocess.run(["umount", path], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 and lazy_on_failure:
        subprocess.run(["umount", "-l", path], capture_output=True, timeout=60)
    return r.returncode == 0


def fuse_abort(path):
    """Abort the FUSE connection behind path so blocked syscalls return ENOTCONN."""
    try:
        minor = os.minor(os.stat(path).st_dev)
    except OSError:
        return False
    ctl = f"/sys/fs/fuse/connections/{minor}/abort"
    try:
        with open(ctl, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


class Interrupted(Exception):
    pass


class Reaper:
    def __init__(self, workspace):
        self.workspace = workspace
        self._stack = []
        self._lock = threading.Lock()
        self._next = 0

    def push(self, desc, fn, *args):
        with self._lock:
            self._next += 1
            token = self._next
            self._stack.append((token, desc, fn, args))
        return token

    def pop(self, token, run=True):
        """Run one undo action now (or, with run=False, just forget it)."""
        with self._lock:
            for i, (t, desc, fn, args) in enumerate(self._stack):
                if t == token:
                    del self._stack[i]
                    break
            else:
                return
        if run:
            fn(*args)

    def unwind(self):
        errors = []
        while True:
            with self._lock:
                if not self._stack:
                    break
                _, desc, fn, args = self._stack.pop()
            try:
                fn(*args)
            except Exception as e:  # keep undoing the rest
                errors.append(f"{desc}: {e}")
        for mp in reversed(mounts_below(self.workspace)):
            fuse_abort(mp)
            umount(mp)
            errors.append(f"swept mount {mp}")
        return errors

    def install_signals(self):
        def on_signal(signum, frame):
            raise Interrupted(f"signal {signum}")
        # SIGINT too: a shell's background job starts with it ignored, Ctrl-C must still clean up.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, on_signal)


class Daemon:
    """A foreground FUSE daemon we started: its pid, log, and a sure stop."""

    def __init__(self, reaper, argv, log_path, env=None, pass_fds=()):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, pass_fds=pass_fds,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.token = reaper.push(f"daemon {argv[0]} pid {self.pid}", self.stop)

    def alive(self):
        return self.proc.poll() is None

    def output(self, limit=2000):
        self.log.flush()
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-limit:].decode(errors="replace").strip()
        except OSError:
            return ""

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        return self.proc.returncode


def wait_mounted(path, daemon, timeout=20.0):
    """Wait until a FUSE mount shows up at path; fail early when the daemon dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_mounted(path, "fuse"):
            return
        if daemon is not None and not daemon.alive():
            raise RuntimeError(f"{os.path.basename(daemon.argv[0])} exited "
                               f"{daemon.proc.returncode}: {daemon.output(400)}")
        time.sleep(0.01)
    raise RuntimeError(f"no mount at {path} after {timeout:.0f}s")


class Trash:
    """Deleting files makes this disk (ext4 -o discard) issue discards that stall the
    next writes; so what a run leaves is moved aside and deleted between workloads."""

    def __init__(self, workspace):
        self.dir = os.path.join(workspace, "trash")
        os.makedirs(self.dir, exist_ok=True)
        self.n = 0
        self.dev = os.stat(workspace).st_dev

    def put(self, path):
        if not os.path.lexists(path):
            return
        while True:
            self.n += 1
            dst = os.path.join(self.dir, f"{os.getpid()}-{self.n}-{os.path.basename(path)}")
            if not os.path.lexists(dst):
                break
        os.rename(path, dst)

    def empty(self):
        subprocess.run(["rm", "-rf", "--one-file-system", self.dir], timeout=3600)
        os.makedirs(self.dir, exist_ok=True)
        os.sync()
        quiesce(self.dev, 30)


def _inflight(dev):
    major, minor = os.major(dev), os.minor(dev)
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if int(p[0]) == major and int(p[1]) == minor:
                return int(p[11])
    return 0


def quiesce(dev, max_seconds):
    """Wait (bounded) until the disk holding dev has had no I/O in flight for 0.3 s."""
    deadline = time.monotonic() + max_seconds
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        quiet = quiet + 1 if _inflight(dev) == 0 else 0
        time.sleep(0.1)


def remove_cgroup(path, attempts=100):
    """Kill what is left in a cgroup and remove it, children first."""
    if not os.path.isdir(path):
        return
    for e in sorted(os.scandir(path), key=lambda e: e.name, reverse=True):
        if e.is_dir(follow_symlinks=False):
            remove_cgroup(e.path)
    for _ in range(attempts):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except FileNotFoundError:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise
            time.sleep(0.05)
    raise RuntimeError(f"cgroup {path} could not be removed")


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    return data[data.rindex(")") + 2:].split()


def descendants(pid):
    """pid and every process below it (a daemon may serve from a worker child)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(d)[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_seconds(pid):
    """CPU of a daemon's whole process tree, including its reaped children."""
    total = 0
    for p in descendants(pid):
        try:
            f = _stat_fields(p)
        except OSError:
            continue
        total += int(f[11]) + int(f[12])
        if p == pid:
            total += int(f[13]) + int(f[14])
    return total / os.sysconf("SC_CLK_TCK")


def tree_status_kib(pid, key):
    """Sum of a /proc/PID/status field over the daemon's process tree."""
    total = 0
    for p in descendants(pid):
        try:
            total += proc_status_kib(p, key)
        except (OSError, KeyError):
            pass
    return total


def tree_fd_count(pid):
    total = 0
    for p in descendants(pid):
        try:
            total += proc_fd_count(p)
        except OSError:
            pass
    return total


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def proc_fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))
