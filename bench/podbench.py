# SPDX-License-Identifier: GPL-2.0-or-later
"""Workload 11: `podman build` of a multi-step Containerfile, then `podman run` of the result.

Each target gets a private podman of its own (storage root, run root, tmp dir, config
files, HOME, runc state dir, cgroup parent, and an empty blob-info cache in a private
mount namespace), so the machine's podman configuration and store are never read or
written: kernel-overlay is podman's native overlay driver, veneer-unionfs and
fuse-overlayfs are its overlay.mount_program. The base image is imported from a
tarball made here (busybox-static, plus the host's C compiler and what it opens when
it compiles, found with strace); no registry is used. A store lives for the whole
benchmark run; what a build adds to it is removed after each run, untimed.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import time

from reaper import mounts_below, remove_cgroup, umount
from union_targets import VENEER_VARIANTS

POD_TARGETS = ("kernel-overlay", "veneer-unionfs", "veneer-uring", "veneer-devfuse",
               "fuse-overlayfs")
BASE_IMAGE = "localhost/veneer-bench-base:latest"
IMAGE = "localhost/veneer-bench-w11:latest"
ULIMITS = ["--ulimit", "nofile=1000:1000", "--ulimit", "nproc=1000:1000"]
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
BUSYBOX_ROOTFS = os.path.join(os.path.dirname(BENCH_DIR), "tests", "fixtures",
                              "busybox-rootfs.sh")

# podman's blob-info cache lives in /var/lib/containers/cache whatever --root says:
# each podman command runs in a private mount namespace where an empty dir of ours
# hides the host's.
PRIVATE_NS = r"""
set -e
cache=$1; shift
if [ -d /var/lib/containers/cache ]; then
    mount --bind "$cache" /var/lib/containers/cache
elif [ -d /var/lib/containers ]; then
    mount --bind "$cache" /var/lib/containers
else
    mount -t tmpfs -o size=1m,mode=0755 tmpfs /var/lib
fi
exec "$@"
"""

# The build's RUN steps: unpack a tarball; create FILES small files in 16 directories,
# delete every other one and rename every third of the rest; change mode and owner of
# whole trees (a copy-up of every file the steps before made); build a small program
# (C with the image's gcc, else a shell "build" of a script). --quick joins them into
# one RUN step (the same work, one container and one layer instead of four).
STEPS = [
    "mkdir -p /work/src && tar -xf /ctx/src.tar -C /work/src && rm /ctx/src.tar",
    "mkdir /work/small && cd /work/small && "
    "awk 'BEGIN {{ for (d = 0; d < 16; d++) system(\"mkdir d\" d); "
    "for (i = 0; i < {files}; i++) {{ f = sprintf(\"d%d/f%06d\", i % 16, i); "
    "print \"data\", i > f; close(f) }} }}' && "
    "find . -name 'f*[02468]' -type f -exec rm {{}} + && "
    "for f in d*/f*[37]; do mv \"$f\" \"$f.renamed\"; done",
    "chmod -R go-w,u+rwX /work && chown -R 1000:1000 /work/src && "
    "chown -R 0:100 /work/small && chmod -R 0750 /work/small/d1",
    "cd /ctx/prog && sh build.sh && rm -rf /ctx",
]


def containerfile(files, steps):
    runs = [s.format(files=files) for s in STEPS]
    if steps == 1:
        runs = [" && ".join(f"( {r} )" for r in runs)]
    return (f"FROM {BASE_IMAGE}\nCOPY src.tar /ctx/src.tar\nCOPY prog /ctx/prog\n"
            + "".join(f"RUN {r}\n" for r in runs) + 'CMD ["/usr/local/bin/bench-prog"]\n')


PROG_C = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bench.h"
int part_{i}(int x) {{ char b[32]; snprintf(b, sizeof(b), "%d", x * {i}); return (int)strlen(b) + x; }}
"""

PROG_MAIN = """\
#include <stdio.h>
#include "bench.h"
int main(void) {{ int s = 0; {calls} printf("bench-prog %d\\n", s); return 0; }}
"""

BUILD_C = """\
set -e
for f in part*.c main.c; do gcc -O1 -c "$f"; done
mkdir -p /usr/local/bin
gcc -o /usr/local/bin/bench-prog *.o
"""

# Without a compiler in the image: the same steps, a script "built" by awk.
BUILD_SH = """\
set -e
mkdir -p /usr/local/bin
awk -v n={parts} 'BEGIN {{ s = 0; for (i = 0; i < n; i++) s += length(sprintf("%d", 7 * i)) + 7;
    print "#!/bin/sh"; print "echo bench-prog " s }}' > /usr/local/bin/bench-prog
chmod 755 /usr/local/bin/bench-prog
"""

# What the run of the image prints: the program's output, the count of files under
# /work/small, and the owners and modes the chmod/chown step left.
CHECK = ("bench-prog && find /work/small -type f | wc -l && "
         "stat -c '%u:%g %a' /work/src /work/small/d1 /work/small/d2")


def expected_files(n):
    """Files left in /work/small after the deletes (renames keep the count)."""
    return sum(1 for i in range(n) if i % 2 == 1)


def prog_sum(parts):
    return sum(len(str(7 * i)) + 7 for i in range(parts))


def _toolchain_files(tmp):
    """The host files gcc opens, execs or stats to compile and link a small C program."""
    gcc = shutil.which("gcc")
    strace = shutil.which("strace")
    if not gcc or not strace:
        return None
    src = os.path.join(tmp, "probe.c")
    with open(src, "w") as f:
        f.write("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
                "int main(void) { printf(\"x\\n\"); return (int)strlen(\"\"); }\n")
    log = os.path.join(tmp, "strace.log")
    subprocess.run([strace, "-f", "-qq", "-e", "trace=execve,openat,open,stat,newfstatat,access",
                    "-e", "status=successful", "-o", log, gcc, "-O1", "-o",
                    os.path.join(tmp, "probe"), src], check=True, timeout=300,
                   capture_output=True, cwd=tmp)
    paths = set()
    with open(log, errors="replace") as f:
        for line in f:
            start = line.find('"/')
            if start < 0:
                continue
            end = line.find('"', start + 1)
            p = os.path.normpath(line[start + 1:end])
            if p.startswith(tmp) or p.startswith(("/proc", "/sys", "/dev", "/tmp")):
                continue
            if os.path.isfile(p):
                paths.add(p)
    return sorted(paths)


def make_base_tarball(out, compiler):
    """busybox-static, plus (compiler=True) the host's gcc and what it needs, as one tarball."""
    with tempfile.TemporaryDirectory(prefix="veneer-bench-base-") as tmp:
        bb = os.path.join(tmp, "busybox.tar")
        subprocess.run([BUSYBOX_ROOTFS, bb], check=True, capture_output=True, timeout=300)
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        subprocess.run(["tar", "-C", root, "-xf", bb], check=True, timeout=300)
        files = _toolchain_files(tmp) if compiler else None
        if compiler and not files:
            raise RuntimeError("workload 11 needs gcc and strace on the host to give the "
                               "image a compiler")
        for p in files or ():
            dst = os.path.join(root, p.lstrip("/"))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(p, dst)  # follows symlinks: the image gets the files themselves
        subprocess.run(["tar", "--numeric-owner", "--owner=0", "--group=0", "--mtime=@0",
                        "--sort=name", "-C", root, "-cf", out, "."], check=True, timeout=600)


def make_context(ctx, tarball, files, parts, compiler, steps):
    os.makedirs(os.path.join(ctx, "prog"))
    with open(os.path.join(ctx, "Containerfile"), "w") as f:
        f.write(containerfile(files, steps))
    shutil.copy(tarball, os.path.join(ctx, "src.tar"))
    prog = os.path.join(ctx, "prog")
    if compiler:
        with open(os.path.join(prog, "bench.h"), "w") as f:
            f.write("".join(f"int part_{i}(int x);\n" for i in range(parts)))
        for i in range(parts):
            with open(os.path.join(prog, f"part{i:03d}.c"), "w") as f:
                f.write(PROG_C.format(i=i))
        # part_i(7) = len(str(7 * i)) + 7, the same sum the awk "build" prints.
        calls = " ".join(f"s += part_{i}(7);" for i in range(parts))
        with open(os.path.join(prog, "main.c"), "w") as f:
            f.write(PROG_MAIN.format(calls=calls))
        build = BUILD_C
    else:
        build = BUILD_SH.format(parts=parts)
    with open(os.path.join(prog, "build.sh"), "w") as f:
        f.write(build)


class PrivatePodman:
    """A podman that touches nothing outside its own directories (also used by
    tests/test_unionfs_podman.py). mount_program None: the native overlay driver;
    sanitizer_log: where a sanitizer build of the mount program reports (a path
    prefix); env: the environment to start from (default: ours)."""

    def __init__(self, base, mount_program, cgroup_parent, sanitizer_log, env=None):
        self.base = base
        self.root = os.path.join(base, "root")
        # podman refuses a run root longer than 50 characters: a short one in /tmp.
        self.runroot = tempfile.mkdtemp(prefix="veneer-bpm-", dir="/tmp")
        self.tmpdir = os.path.join(base, "tmp")
        self.cache = os.path.join(base, "image-cache")
        self.runc_root = os.path.join(base, "runc")
        self.cgroup_parent = cgroup_parent
        cfg, home, xdg = (os.path.join(base, d) for d in ("cfg", "home", "xdg"))
        for d in (self.root, self.tmpdir, self.cache, self.runc_root, cfg, home, xdg):
            os.makedirs(d, exist_ok=True)
        os.chmod(xdg, 0o700)
        # podman's own cleanup (conmon's exit command) calls runc without --runtime-flag:
        # "runc" is a wrapper that keeps runc's state in our dir.
        runc = shutil.which("runc") or "/usr/sbin/runc"
        wrapper = os.path.join(base, "runc-wrapper")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec {runc} --root "{self.runc_root}" "$@"\n')
        os.chmod(wrapper, 0o755)
        with open(os.path.join(cfg, "containers.conf"), "w") as f:
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'runtime = "runc"\nevents_logfile_path = "{self.tmpdir}/events.log"\n'
                    f'[engine.runtimes]\nrunc = ["{wrapper}"]\n[containers]\nnetns = "none"\n')
        storage_opts = []
        with open(os.path.join(cfg, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\n'
                    f'graphroot = "{self.root}"\n')
            if mount_program:
                f.write(f'[storage.options.overlay]\nmount_program = "{mount_program}"\n')
                storage_opts = ["--storage-opt", f"overlay.mount_program={mount_program}"]
        with open(os.path.join(cfg, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        env = dict(os.environ if env is None else env)
        # The mount program inherits podman's environment.
        for var, what in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
            env[var] = env.get(var, "") + f":log_path={sanitizer_log}-{what}.log"
        env.update(HOME=home, XDG_RUNTIME_DIR=xdg, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_DATA_HOME=os.path.join(home, ".local/share"),
                   CONTAINERS_CONF=os.path.join(cfg, "containers.conf"),
                   CONTAINERS_STORAGE_CONF=os.path.join(cfg, "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=os.path.join(cfg, "registries.conf"),
                   TMPDIR=self.tmpdir)
        self.env = env
        self.argv = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                     PRIVATE_NS, "sh", self.cache, "podman", "--root", self.root,
                     "--runroot", self.runroot, "--tmpdir", self.tmpdir,
                     "--storage-driver", "overlay"] + storage_opts + [
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]
        # Build and run under cgroup parents of their own: runc's "a *:* rwm" deny of a
        # build step fails (EINVAL, cgroup v1 devices) in a cgroup that has children.
        self.build_opts = ULIMITS + ["--cgroup-parent", f"/{cgroup_parent}/build"]
        self.run_opts = ULIMITS + ["--cgroup-parent", f"/{cgroup_parent}/run"]

    def run(self, *args, timeout=600):
        return subprocess.run(self.argv + list(args), env=self.env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def __call__(self, *args, timeout=600, check=True):
        r = self.run(*args, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:2])} exited {r.returncode}: "
                               f"{(r.stderr or r.stdout).strip()[-400:]}")
        return r.stdout

    def pids(self):
        """Processes of this podman (conmon, mount programs): their command line names our dirs."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) == os.getpid():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if self.base.encode() in cmd or self.runroot.encode() in cmd:
                out.append(int(d))
        return out

    def clean_images(self):
        """Remove containers, their cgroups and every image but the base (untimed, after
        each run)."""
        self("rm", "-a", "-f", "-t", "0", check=False, timeout=300)
        self("rmi", "-f", IMAGE, check=False, timeout=300)
        self("image", "prune", "-f", check=False, timeout=300)
        return self.remove_cgroups()

    def remove_cgroups(self):
        problems = []
        for ctrl in sorted(os.listdir("/sys/fs/cgroup")):
            p = os.path.join("/sys/fs/cgroup", ctrl, self.cgroup_parent)
            try:
                remove_cgroup(p)
            except (RuntimeError, OSError) as e:
                problems.append(f"cgroup {p}: {e}")
        return problems

    def stop(self):
        """Remove containers and images, unmount, wait for what podman started, remove
        the cgroups; returns the problems met."""
        problems = []
        for args in (("rm", "-a", "-f", "-t", "0"), ("rmi", "-a", "-f")):
            try:
                self(*args, check=False, timeout=300)
            except subprocess.TimeoutExpired:
                problems.append(f"podman {' '.join(args)} timed out")
        # podman leaves its storage root bind-mounted on itself, maybe a merged dir too.
        for mp in sorted(mounts_below(self.base) + mounts_below(self.runroot), reverse=True):
            umount(mp)
        # conmon and mount program daemons exit once unmounted (a sanitizer report is
        # written at exit).
        deadline = time.monotonic() + 15
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.pids():
            problems.append(f"process {pid} left running")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        left = mounts_below(self.base) + mounts_below(self.runroot)
        if left:
            problems.append(f"mounts left: {left}")
        return problems + self.remove_cgroups()

    def remove(self):
        shutil.rmtree(self.runroot, ignore_errors=True)
        subprocess.run(["rm", "-rf", "--one-file-system", self.base], timeout=3600)

    def teardown(self):
        problems = self.stop()
        self.remove()
        if problems:
            raise RuntimeError("; ".join(problems))


class PodBench:
    """The private podman stores of workload 11, one per target, kept across repetitions."""

    def __init__(self, workspace, reaper, layers, sizes, binaries, log, timeout):
        self.ws = workspace
        self.reaper = reaper
        self.layers = layers
        self.s = sizes
        self.binaries = binaries  # target -> mount program path (None: native overlay)
        self.log = log
        self.timeout = timeout
        self.stores = {}
        self.logs = os.path.join(workspace, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.cg_base = f"veneer-bench-{os.getpid()}"

    def base_tarball(self):
        compiler = self.s.pod_compiler
        return self.layers.fresh("pod-base.tar", {"compiler": compiler, "v": 1},
                                 lambda t: make_base_tarball(t, compiler))

    def context(self):
        s = self.s
        tarball = self.layers.tarball()

        def make(t):
            make_context(t, tarball, s.pod_files, s.pod_parts, s.pod_compiler, s.pod_steps)
        return self.layers.fresh("pod-context", {"files": s.pod_files, "parts": s.pod_parts,
                                                 "compiler": s.pod_compiler,
                                                 "steps": s.pod_steps, "tar": s.tar_source,
                                                 "v": 2}, make)

    def store(self, target):
        pm = self.stores.get(target)
        if pm:
            return pm
        base = os.path.join(self.ws, "pod", target)
        if os.path.exists(base):
            subprocess.run(["rm", "-rf", "--one-file-system", base], timeout=3600)
        os.makedirs(base)
        program = self.binaries.get(target)
        if VENEER_VARIANTS.get(target):
            # podman gives the mount program no options of ours: a wrapper adds them.
            wrapper = os.path.join(base, target)
            with open(wrapper, "w") as f:
                f.write(f'#!/bin/sh\nexec {program} -o {VENEER_VARIANTS[target]} "$@"\n')
            os.chmod(wrapper, 0o755)
            program = wrapper
        pm = PrivatePodman(base, program, f"{self.cg_base}/pod-{target}",
                           os.path.join(self.logs, f"w11-{target}"))
        pm.token = self.reaper.push(f"podman store {base}", pm.teardown)
        self.stores[target] = pm
        pm("import", self.base_tarball(), BASE_IMAGE, timeout=self.timeout)
        return pm

    def close(self):
        for pm in self.stores.values():
            self.reaper.pop(pm.token)
        if self.stores:
            # The parent cgroup the stores' parents were made in, in every hierarchy.
            for ctrl in os.listdir("/sys/fs/cgroup"):
                try:
                    os.rmdir(os.path.join("/sys/fs/cgroup", ctrl, self.cg_base))
                except OSError:
                    pass
        self.stores.clear()

    def run(self, target):
        ctx = self.context()
        pm = self.store(target)
        pm.clean_images()
        t0 = time.perf_counter()
        pm("build", "--pull=never", "--no-cache", "--network", "none", *pm.build_opts,
           "-t", IMAGE, ctx, timeout=self.timeout)
        t1 = time.perf_counter()
        out = pm("run", "--rm", "--network", "none", *pm.run_opts, IMAGE, "sh", "-c", CHECK,
                 timeout=self.timeout)
        t2 = time.perf_counter()
        pm.clean_images()
        want = [f"bench-prog {prog_sum(self.s.pod_parts)}", str(expected_files(self.s.pod_files)),
                "1000:1000 755", "0:100 750", "0:100 755"]
        got = out.split("\n")[:len(want)]
        if got != want:
            raise RuntimeError(f"wrong result: the image's run printed {got}, expected {want}")
        return {"11.total": t2 - t0, "11.build": t1 - t0, "11.run": t2 - t1}
