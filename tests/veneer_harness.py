# SPDX-License-Identifier: GPL-2.0-or-later
"""Mount, daemon and cgroup bookkeeping for veneer's pytest suites.

Everything a test starts goes through a Harness, which undoes it in reverse
order at teardown, whether the test passed, failed or was interrupted. Daemons
run in the foreground with --ready-fd so a mount is known to be up before the
test touches it; their stderr is kept, and a sanitizer report in it fails the
test.
"""
import errno
import hashlib
import os
import signal
import stat
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def strict():
    """In CI a missing prerequisite is a failure, never a skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or \
        os.environ.get("VENEER_STRICT") == "1"


def require(cond, reason):
    if cond:
        return
    if strict():
        pytest.fail(f"missing prerequisite (CI turns skips into failures): {reason}")
    pytest.skip(reason)


def build_dir():
    return os.environ.get("VENEER_BUILD") or os.path.join(REPO, "build")


def build_path(rel):
    return os.path.join(build_dir(), rel)


def sanitizer_env(env=None):
    env = dict(os.environ if env is None else env)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:halt_on_error=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    supp = os.path.join(REPO, "tests", "lsan.supp")
    if os.path.exists(supp):
        env.setdefault("LSAN_OPTIONS", f"suppressions={supp}:print_suppressions=0")
    return env


def mounted_at(path):
    """True when path is a mount point in this mount namespace."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path:
                return True
    return False


def mounts_below(root):
    root = os.path.realpath(root)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == root or mp.startswith(root + "/"):
                out.append(mp)
    return out


def lazy_umount(path):
    subprocess.run(["umount", "-l", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Daemon:
    """A foreground daemon with a log file and a sanitizer check on exit."""

    def __init__(self, argv, log_path, env=None, ready=True, timeout=20):
        self.argv = argv
        self.log_path = log_path
        self.log = open(log_path, "wb")
        rfd, wfd = os.pipe()
        if ready:
            argv = argv + [f"--ready-fd={wfd}"]
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=(wfd,),
                                     env=sanitizer_env(env), start_new_session=True)
        os.close(wfd)
        self.checked = False
        if ready:
            self._wait_ready(rfd, timeout)
        else:
            os.close(rfd)

    def _wait_ready(self, rfd, timeout):
        import select
        try:
            r, _, _ = select.select([rfd], [], [], timeout)
            data = os.read(rfd, 64) if r else b""
        finally:
            os.close(rfd)
        if data.startswith(b"READY"):
            return
        self.stop()
        raise RuntimeError(f"{self.argv[0]} did not become ready "
                           f"(exit {self.proc.returncode}): {self.output()}")

    def output(self):
        if not self.log.closed:  # stop() closes it; the file stays readable
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout=15):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def sanitizer_report(self):
        out = self.output()
        for m in SANITIZER_MARKERS:
            if m in out:
                return out
        return None


class Mount:
    def __init__(self, path, daemon=None, kind="fuse"):
        self.path = path
        self.daemon = daemon
        self.kind = kind


class Harness:
    def __init__(self, tmp_path):
        self.tmp = str(tmp_path)
        self._cleanups = []
        self._daemons = []
        self._n = 0

    # --- bookkeeping -------------------------------------------------------
    def defer(self, fn, *args):
        self._cleanups.append((fn, args))

    def path(self, *parts):
        p = os.path.join(self.tmp, *parts)
        return p

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def cleanup(self):
        errors = []
        while self._cleanups:
            fn, args = self._cleanups.pop()
            try:
                fn(*args)
            except Exception as e:  # keep undoing the rest
                errors.append(f"{getattr(fn, '__name__', fn)}{args}: {e}")
        for mp in reversed(mounts_below(self.tmp)):
            lazy_umount(mp)
            errors.append(f"mount left behind at {mp}")
        reports = []
        for d in self._daemons:
            d.stop()
            rep = d.sanitizer_report()
            if rep:
                reports.append(f"{d.argv[0]}:\n{rep}")
        if reports:
            raise AssertionError("sanitizer report from a daemon:\n" + "\n".join(reports))
        if errors:
            raise AssertionError("cleanup problems: " + "; ".join(errors))

    # --- daemons and mounts ------------------------------------------------
    def start_daemon(self, argv, ready=True, env=None, timeout=20):
        self._n += 1
        log = self.path(f"daemon-{self._n}.log")
        d = Daemon(argv, log, env=env, ready=ready, timeout=timeout)
        self._daemons.append(d)
        return d

    def umount(self, m, timeout=15):
        """Unmount m and wait for its daemon to exit; returns the daemon's exit code."""
        if mounted_at(m.path):
            r = subprocess.run(["umount", m.path], capture_output=True, text=True)
            if r.returncode != 0:
                lazy_umount(m.path)
        if m.daemon is not None:
            rc = m.daemon.wait(timeout)
            if rc is None:
                m.daemon.stop()
                rc = m.daemon.proc.returncode
            return rc
        return 0

    def mount_fuse(self, argv, mnt, ready=True, env=None):
        os.makedirs(mnt, exist_ok=True)
        d = self.start_daemon(argv + ["-f", mnt], ready=ready, env=env)
        m = Mount(mnt, d)
        self.defer(self.umount, m)
        return m

    def mount_unionfs(self, lower, upper=None, work=None, mnt=None, opts=(), args=(), env=None):
        """veneer-unionfs over lower (top first). $VENEER_UNIONFS_OPTS (comma-separated -o
        options, e.g. uring=on) applies to every mount; opts given here win over it."""
        from veneer_harness import build_path as bp
        o = ["lowerdir=" + ":".join(x.replace(":", "\\:") for x in lower)]
        if upper:
            o.append("upperdir=" + upper)
        if work:
            o.append("workdir=" + work)
        o.extend(x for x in os.environ.get("VENEER_UNIONFS_OPTS", "").split(",") if x)
        o.extend(opts)
        mnt = mnt or self.path("merged")
        return self.mount_fuse([bp("unionfs/veneer-unionfs"), "-o", ",".join(o), *args], mnt,
                               env=env)

    def mount_overlay(self, lower, upper=None, work=None, mnt=None, opts=()):
        """The kernel's overlayfs, the oracle for differential tests."""
        mnt = mnt or self.path("kmerged")
        os.makedirs(mnt, exist_ok=True)
        o = ["lowerdir=" + ":".join(lower)]
        if upper:
            o += ["upperdir=" + upper, "workdir=" + work]
        o.extend(opts)
        # With index=on the kernel keeps an upper to one mount at a time, and a mount just
        # unmounted may hold it a moment longer (its superblock goes after umount returns):
        # EBUSY then, "upperdir is in-use" in the kernel log. Anything else fails at once.
        deadline = time.time() + (10 if "index=on" in opts else 0)
        while True:
            r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", ",".join(o), mnt],
                               capture_output=True)
            if r.returncode == 0 or b"busy" not in r.stderr or time.time() > deadline:
                break
            time.sleep(0.1)
        r.check_returncode()
        m = Mount(mnt, None, kind="overlay")
        self.defer(self.umount, m)
        return m

    def unionfs_on_overlay_upper(self, lower, mutate, opts=()):
        """mutate on kernel overlayfs (the oracle) and on veneer whose upper and workdir sit
        on a kernel overlay mount (which refuses 0/0 whiteout devices, so veneer falls back
        to OCI ".wh." files); both merged trees must match. Returns (the oracle's snapshot,
        veneer's mount, its upper, its workdir)."""
        k = self.mount_overlay([lower], self.mkdir("ku"), self.mkdir("kw"), mnt=self.path("km"))
        mutate(k.path)
        expected = snapshot(k.path)
        host = self.mount_overlay([self.mkdir("al")], self.mkdir("au"), self.mkdir("aw"),
                                  mnt=self.path("am"))
        upper = os.path.join(host.path, "u")
        work = os.path.join(host.path, "w")
        os.mkdir(upper)
        os.mkdir(work)
        v = self.mount_unionfs([lower], upper, work, mnt=self.path("vm"), opts=opts)
        mutate(v.path)
        assert snapshot(v.path) == expected
        return expected, v, upper, work

    # --- cgroups (v1 hierarchies; v2 where a controller is there) -----------
    def cgroup_v1(self, controllers, name=None, settings=None):
        """Create /sys/fs/cgroup/<ctrl>/<name> for each controller; removed at teardown."""
        name = name or f"veneer-test-{os.getpid()}-{self._n}-{int(time.time() * 1000) % 100000}"
        self._n += 1
        paths = {}
        for c in controllers:
            p = os.path.join("/sys/fs/cgroup", c, name)
            os.makedirs(p, exist_ok=True)
            paths[c] = p
            self.defer(remove_cgroup, p)
        if "cpuset" in paths:
            for f in ("cpuset.mems", "cpuset.cpus"):
                with open(os.path.join("/sys/fs/cgroup/cpuset", f)) as src:
                    val = src.read().strip()
                with open(os.path.join(paths["cpuset"], f), "w") as dst:
                    dst.write(val)
        for (c, f), v in (settings or {}).items():
            with open(os.path.join(paths[c], f), "w") as fh:
                fh.write(str(v))
        return name, paths


def pids_mentioning(text, skip_zombies=True):
    """(pid, command line) of the processes other than this one whose command line contains
    text (daemons carry their mount point or state dir in it); zombies only if asked."""
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == os.getpid():
            continue
        try:
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if text not in cmd:
                continue
            if skip_zombies:
                with open(f"/proc/{e}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
        except OSError:
            continue
        out.append((int(e), cmd))
    return out


def remove_cgroup(path):
    """Kill what is left in a cgroup and remove it (children first)."""
    if not os.path.isdir(path):
        return
    for child in sorted((e.path for e in os.scandir(path) if e.is_dir()), reverse=True):
        remove_cgroup(child)
    for attempt in range(50):
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
            time.sleep(0.1)
    raise AssertionError(f"cgroup {path} could not be removed")


# --- tree snapshots for differential tests ----------------------------------
def visible_xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    out = []
    for n in sorted(names):
        try:
            out.append((n, os.getxattr(path, n, follow_symlinks=False)))
        except OSError as e:
            out.append((n, f"errno {e.errno}"))
    return tuple(out)


def snapshot(root, xattrs=True, inodes=False):
    """relpath -> tuple describing one entry: type, mode, owner, size, content, xattrs, nlink."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                content = h.hexdigest()
                size = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
                size = st.st_size
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                content = (os.major(st.st_rdev), os.minor(st.st_rdev))
                size = 0
            else:
                content = None
                size = None
            nlink = st.st_nlink if not stat.S_ISDIR(st.st_mode) else None
            entry = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, content,
                     visible_xattrs(p) if xattrs else (), nlink)
            if inodes:
                entry += (st.st_ino,)
            out[rel] = entry
    return out


def copy_tree(src, dst):
    """cp -a, keeping xattrs, devices and hard links."""
    subprocess.run(["cp", "-a", src + "/.", dst], check=True)


def errno_of(fn, *args, **kw):
    """Run fn; 0 when it succeeds, else the errno it failed with."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno
