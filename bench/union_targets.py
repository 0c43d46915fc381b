# SPDX-License-Identifier: GPL-2.0-or-later
"""The union filesystems under test and how each is mounted for one run.

Every run mounts over fresh upper and work directories (the lowers are the
shared read-only layers) and is torn down by Run.close(): unmount, wait for the
daemon, remove the run directory. A watchdog aborts a FUSE connection that
stops answering so a hung daemon cannot hang the benchmark.
"""
import os
import shutil
import subprocess
import threading

from reaper import Daemon, fuse_abort, is_mounted, umount, wait_mounted

UNION_TARGETS = ["kernel-overlay", "veneer-unionfs", "fuse-overlayfs", "unionfs-fuse", "plain"]
# Run only when named in --targets: veneer-unionfs with requests through FUSE over io_uring
# only (uring=on: the mount fails without it), and through /dev/fuse only (uring=off).
# veneer-unionfs itself runs with its defaults (uring=auto: io_uring when the kernel offers it).
EXTRA_UNION_TARGETS = ["veneer-uring", "veneer-devfuse"]
# The -o options a veneer variant adds.
VENEER_VARIANTS = {"veneer-unionfs": "", "veneer-uring": "uring=on", "veneer-devfuse": "uring=off"}
REFERENCE = "kernel-overlay"


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


class Run:
    """One mounted target: root is where the workload operates."""

    def __init__(self, target, root, run_dir=None, upper=None, daemon=None, reaper=None,
                 mnt=None, timeout=None, trash=None):
        self.target = target
        self.root = root
        self.run_dir = run_dir
        self.upper = upper
        self.daemon = daemon
        self.reaper = reaper
        self.mnt = mnt
        self.plain = target == "plain"
        self.trash = trash
        self.token = None
        self.watchdog = None
        self.timed_out = False
        if reaper is not None and mnt is not None:
            self.token = reaper.push(f"run {target} at {mnt}", self._teardown)
        if daemon is not None and timeout:
            self.watchdog = threading.Timer(timeout, self._abort)
            self.watchdog.daemon = True
            self.watchdog.start()

    @property
    def pid(self):
        return self.daemon.pid if self.daemon else None

    def cold(self):
        drop_caches()

    def _abort(self):
        self.timed_out = True
        fuse_abort(self.mnt)

    def _teardown(self):
        if self.watchdog:
            self.watchdog.cancel()
        if self.mnt and is_mounted(self.mnt):
            if not umount(self.mnt, lazy_on_failure=False):
                fuse_abort(self.mnt)
                umount(self.mnt)
        if self.daemon:
            if self.daemon.wait(15) is None:
                self.daemon.stop()
            if self.daemon.token:
                self.reaper.pop(self.daemon.token)
        if self.run_dir and os.path.isdir(self.run_dir):
            if self.trash and not is_mounted(self.mnt):
                self.trash.put(self.run_dir)
            else:
                shutil.rmtree(self.run_dir, ignore_errors=True)

    def close(self):
        if self.token is not None:
            self.reaper.pop(self.token)
            self.token = None


class UnionTargets:
    def __init__(self, workspace, reaper, veneer_build, timeout, trash=None):
        self.runs = os.path.join(workspace, "runs")
        self.logs = os.path.join(workspace, "logs")
        os.makedirs(self.runs, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        self.reaper = reaper
        self.veneer = os.path.join(veneer_build, "unionfs", "veneer-unionfs")
        self.timeout = timeout
        self.trash = trash
        self.n = 0

    def binary(self, target):
        if target in VENEER_VARIANTS:
            return self.veneer
        return {"fuse-overlayfs": shutil.which("fuse-overlayfs") or "fuse-overlayfs",
                "unionfs-fuse": shutil.which("unionfs-fuse") or "unionfs-fuse"}.get(target)

    def missing(self, target):
        """Why target cannot run here, or None."""
        b = self.binary(target)
        if b and not (os.path.isfile(b) and os.access(b, os.X_OK)):
            return f"{b} not found"
        if target == "kernel-overlay":
            with open("/proc/filesystems") as f:
                if not any(line.split()[-1] == "overlay" for line in f if line.strip()):
                    return "no overlay in /proc/filesystems"
        if target == "veneer-uring":
            try:
                with open("/sys/module/fuse/parameters/enable_uring") as f:
                    if f.read().strip() != "Y":
                        return "FUSE over io_uring is off (/sys/module/fuse/parameters/enable_uring)"
            except OSError:
                return "the kernel has no FUSE over io_uring"
        if target != "plain" and target != "kernel-overlay" and not os.path.exists("/dev/fuse"):
            return "no /dev/fuse"
        return None

    def mount(self, target, lowers, plain_root, extra=None):
        """Mount target over lowers (top first) with a fresh upper; plain uses plain_root.
        extra: more -o options for this target (e.g. metacopy=on)."""
        if target == "plain":
            return Run(target, plain_root)
        self.n += 1
        run_dir = os.path.join(self.runs, f"{target}-{self.n}")
        if os.path.exists(run_dir):
            shutil.rmtree(run_dir)
        upper, work, mnt = (os.path.join(run_dir, x) for x in ("upper", "work", "mnt"))
        for d in (upper, work, mnt):
            os.makedirs(d)
        esc = ":".join(lw.replace(":", "\\:") for lw in lowers)
        opts = f"lowerdir={esc},upperdir={upper},workdir={work}"
        if extra:
            opts += "," + extra
        if target == "kernel-overlay":
            cwd = None
            parent = os.path.dirname(lowers[0])
            if len(opts) > 3000 and all(os.path.dirname(lw) == parent for lw in lowers):
                # mount(2) takes one page of options: 500 layers fit only as relative paths.
                cwd = parent
                rel = ":".join(os.path.basename(lw).replace(":", "\\:") for lw in lowers)
                opts = opts.replace(f"lowerdir={esc},", f"lowerdir={rel},", 1)
            token = self.reaper.push(f"kernel overlay {mnt}", umount, mnt)
            try:
                subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, mnt],
                               check=True, capture_output=True, text=True, timeout=60, cwd=cwd)
            except subprocess.CalledProcessError as e:
                self.reaper.pop(token, run=False)
                shutil.rmtree(run_dir, ignore_errors=True)
                raise RuntimeError(f"mount -t overlay failed: {e.stderr.strip()}")
            self.reaper.pop(token, run=False)  # Run owns it from here
            return Run(target, mnt, run_dir, upper, None, self.reaper, mnt, trash=self.trash)
        if target in VENEER_VARIANTS or target == "fuse-overlayfs":
            if VENEER_VARIANTS.get(target):
                opts += "," + VENEER_VARIANTS[target]
            argv = [self.binary(target), "-f", "-o", opts, mnt]
        elif target == "unionfs-fuse":
            branches = ":".join([f"{upper}=RW"] + [f"{lw}=RO" for lw in lowers])
            argv = [self.binary(target), "-f", "-o", "cow,hide_meta_files", branches, mnt]
        else:
            raise ValueError(f"unknown union target {target}")
        log = os.path.join(self.logs, f"{target}-{self.n}.log")
        daemon = Daemon(self.reaper, argv, log)
        run = Run(target, mnt, run_dir, upper, daemon, self.reaper, mnt, self.timeout, self.trash)
        try:
            wait_mounted(mnt, daemon)
        except BaseException:
            run.close()
            raise
        return run


def version_of(target, veneer_bin):
    cmds = {
        "kernel-overlay": ["uname", "-r"],
        "veneer-unionfs": [veneer_bin, "--version"],
        "veneer-uring": [veneer_bin, "--version"],
        "veneer-devfuse": [veneer_bin, "--version"],
        "fuse-overlayfs": ["fuse-overlayfs", "--version"],
        "unionfs-fuse": ["dpkg-query", "-W", "-f", "${Version}", "unionfs-fuse"],
        "plain": ["findmnt", "-n", "-o", "FSTYPE,OPTIONS", "-T", "/var/tmp"],
    }
    return first_line(cmds.get(target), prefer=target)


def first_line(argv, prefer=None):
    if not argv:
        return "?"
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    out = (r.stdout + r.stderr).strip().splitlines()
    lines = ([ln for ln in out if prefer and prefer in ln]
             or [ln for ln in out if "version" in ln.lower()] or out)
    return lines[0].strip() if lines else f"exit {r.returncode}"
