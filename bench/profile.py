#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Profile one daemon on one operation: where the benchmark's missed targets come from.

  bench/profile.py --target veneer-unionfs --op create [--tool strace|callgrind] [-n N]

strace: the daemon is mounted, warmed up, then `strace -c -f -p PID` is attached
for the timed operation only, and the syscall summary is printed with syscalls
per operation. callgrind: the daemon runs under valgrind for a whole session
(mount, warm-up, operation) and the top functions by instructions are printed.
Uses the layers of the benchmark workspace (bench/run generates them).
"""
import argparse
import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)

from layers import Layers, Sizes  # noqa: E402
from procbench import ProcBench  # noqa: E402
from reaper import Reaper, Trash  # noqa: E402
from union_targets import UnionTargets  # noqa: E402
from union_workloads import count_lines, read_all  # noqa: E402

OPS = ["create", "stat", "unlink", "find-warm", "ls-warm", "copyup", "read-warm", "proc"]


def main():
    p = argparse.ArgumentParser(prog="bench/profile.py")
    p.add_argument("--target", default="veneer-unionfs")
    p.add_argument("--op", choices=OPS, required=True)
    p.add_argument("--tool", choices=["strace", "callgrind"], default="strace")
    p.add_argument("-n", type=int, default=20000, help="files for create/stat/unlink")
    p.add_argument("--workdir", default="/var/tmp/veneer-bench")
    p.add_argument("--veneer-build", default=os.environ.get("VENEER_BUILD", "build"))
    p.add_argument("--out", default="/tmp/veneer-profile")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    # Own runs directory: the final sweep must never touch a benchmark running on the workspace.
    a.own = os.path.join(a.workdir, f"profile-{os.getpid()}")
    os.makedirs(a.own, exist_ok=True)
    reaper = Reaper(a.own)
    reaper.install_signals()
    try:
        if a.op == "proc":
            return profile_proc(a, reaper)
        return profile_union(a, reaper)
    finally:
        for e in reaper.unwind():
            print(f"cleanup: {e}", file=sys.stderr)
        subprocess.run(["rm", "-rf", "--one-file-system", a.own])


def _strace_attach(pid, out):
    proc = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached to every thread
    return proc


def _strace_detach(proc, out, nops, what):
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    with open(out) as f:
        text = f.read()
    total = [ln for ln in text.splitlines() if ln.strip().endswith("total")]
    calls = int(total[0].split()[3]) if total else 0
    print(text)
    print(f"{what}: {calls} daemon syscalls for {nops} operations = "
          f"{calls / max(nops, 1):.1f} per operation")


def profile_union(a, reaper):
    sizes = Sizes()
    layers = Layers(a.workdir, sizes, lambda m: print(m, file=sys.stderr))
    ut = UnionTargets(a.own, reaper, os.path.abspath(a.veneer_build), 3600, Trash(a.own))
    if a.tool == "callgrind":
        orig = ut.binary

        def wrapped_mount(target, lowers, plain):
            return ut_mount_wrapped(ut, orig, target, lowers, a.out)
        mount = wrapped_mount
    else:
        mount = ut.mount
    if a.op == "ls-warm":
        lowers, plain = layers.merge()
    else:
        lowers, plain = [layers.main()], layers.main()
    run = mount(a.target, lowers, plain)
    try:
        root = run.root
        names = [f"p{i:06d}" for i in range(a.n)]
        d = os.path.join(root, "meta", "prof")
        if a.op in ("create", "stat", "unlink"):
            os.mkdir(d)
            if a.op != "create":
                for nm in names:
                    os.close(os.open(os.path.join(d, nm), os.O_CREAT | os.O_WRONLY, 0o644))
        if a.op == "find-warm":
            count_lines(["find", os.path.join(root, "tree")], 600)
        if a.op == "ls-warm":
            count_lines(["ls", "-f", os.path.join(root, "dir")], 600)
        if a.op == "read-warm":
            read_all(os.path.join(root, "big.bin"))
        out = os.path.join(a.out, f"strace-{a.target}-{a.op}.txt")
        st = _strace_attach(run.pid, out) if a.tool == "strace" else None
        t0 = time.perf_counter()
        nops = a.n
        if a.op == "create":
            for nm in names:
                os.close(os.open(os.path.join(d, nm), os.O_CREAT | os.O_WRONLY, 0o644))
        elif a.op == "stat":
            for nm in names:
                os.stat(os.path.join(d, nm))
        elif a.op == "unlink":
            for nm in names:
                os.unlink(os.path.join(d, nm))
        elif a.op == "find-warm":
            nops = count_lines(["find", os.path.join(root, "tree")], 600)
        elif a.op == "ls-warm":
            nops = count_lines(["ls", "-f", os.path.join(root, "dir")], 600)
        elif a.op == "copyup":
            fd = os.open(os.path.join(root, "big.bin"), os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"x")
            os.close(fd)
            nops = 1
        elif a.op == "read-warm":
            nops = read_all(os.path.join(root, "big.bin")) >> 20
        dt = time.perf_counter() - t0
        print(f"{a.target} {a.op}: {nops} ops in {dt:.3f}s ({nops / dt:.0f}/s)"
              + (" [under strace]" if st else ""))
        if st:
            _strace_detach(st, out, nops, f"{a.target} {a.op}")
    finally:
        run.close()
    if a.tool == "callgrind":
        annotate(a.out)
    return 0


def ut_mount_wrapped(ut, orig_binary, target, lowers, out):
    """Like UnionTargets.mount, with the daemon under valgrind --tool=callgrind."""
    real = orig_binary(target)
    wrapper = os.path.join(out, "vg-wrapper")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --quiet "
                f"--callgrind-out-file={out}/callgrind.out.%p {real} \"$@\"\n")
    os.chmod(wrapper, 0o755)
    for old in os.listdir(out):
        if old.startswith("callgrind.out."):
            os.unlink(os.path.join(out, old))
    ut.binary = lambda t: wrapper if t == target else orig_binary(t)
    return ut.mount(target, lowers, None)


def annotate(out):
    time.sleep(1)
    for f in sorted(os.listdir(out)):
        if f.startswith("callgrind.out."):
            r = subprocess.run(["callgrind_annotate", "--inclusive=no", os.path.join(out, f)],
                               capture_output=True, text=True)
            print("\n".join(r.stdout.splitlines()[:60]))


def profile_proc(a, reaper):
    """strace the veneer-procfs or lxcfs worker while 10 containers read /proc/meminfo."""
    sizes = Sizes(proc_seconds=2.0)
    pb = ProcBench(a.own, reaper, sizes, os.path.abspath(a.veneer_build),
                   lambda m: print(m, file=sys.stderr))
    orig_start = pb.start_daemon
    holder = {}

    def start(target):
        d, mnt, files, tok = orig_start(target)
        pids = [p for p in _tree(d.pid)]
        out = os.path.join(a.out, f"strace-{target}-proc.txt")
        holder["st"] = subprocess.Popen(
            ["strace", "-c", "-f", "-o", out] + sum((["-p", str(p)] for p in pids), []),
            stderr=subprocess.DEVNULL)
        holder["out"] = out
        time.sleep(1.0)
        return d, mnt, files, tok
    pb.start_daemon = start
    res = pb.run(a.target, 10, 120)
    reads = sum(v * sizes.proc_seconds for k, v in res.items() if k.endswith(".rate"))
    _strace_detach(holder["st"], holder["out"], int(reads), f"{a.target} /proc reads")
    print(res)
    return 0


def _tree(pid):
    from reaper import descendants
    return descendants(pid)


if __name__ == "__main__":
    sys.exit(main())
