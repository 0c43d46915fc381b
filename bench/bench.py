#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer's side-by-side benchmark driver (run it as bench/run).

Runs the union workloads on kernel overlayfs, veneer-unionfs, fuse-overlayfs,
unionfs-fuse and a plain directory (workload 11, podman, on the first three),
the busy-host repeats of workloads 3, 7 and 9, and the /proc workloads on
veneer-procfs and lxcfs, interleaved, then prints one markdown table, judges
the issue's targets and writes RESULTS.md.
Everything it mounts, starts or creates is undone on exit, error or Ctrl-C.
"""
import argparse
import fcntl
import os
import shlex
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True
BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)

from layers import Layers, Sizes, quick_sizes  # noqa: E402
from podbench import PodBench  # noqa: E402
from procbench import PROC_REFERENCE, PROC_TARGETS, ProcBench, proc_rows, proc_version  # noqa: E402
from reaper import Interrupted, Reaper, Trash, quiesce  # noqa: E402
from report import Results, table, write_results  # noqa: E402
from targets import verdicts  # noqa: E402
from union_targets import (EXTRA_UNION_TARGETS, REFERENCE, UNION_TARGETS, Run,  # noqa: E402
                           UnionTargets, version_of)
from union_workloads import Workloads  # noqa: E402

WORKLOADS = [str(i) for i in range(1, 13)] + ["busy", "proc"]


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark veneer side by side with kernel overlayfs, fuse-overlayfs, "
                    "unionfs-fuse and lxcfs (needs root).")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes, a few seconds per workload (the smoke test)")
    p.add_argument("--huge", action="store_true",
                   help="workload 10 on 1,000,000 files (default 100,000; slow)")
    p.add_argument("--only", default="",
                   help="comma-separated workloads: 1..12, busy (3, 7, 9 under a CPU load) "
                        "and/or proc (default: all)")
    p.add_argument("--targets", default="",
                   help="comma-separated targets (default: all but " +
                        ", ".join(EXTRA_UNION_TARGETS) + "): " +
                        ", ".join(UNION_TARGETS + EXTRA_UNION_TARGETS + PROC_TARGETS))
    p.add_argument("--reps", type=int, default=0, help="repetitions (default 3, at least 3)")
    p.add_argument("--big-mib", type=int, default=0, help="size of the big lower file in MiB")
    p.add_argument("--load", type=int, default=0,
                   help="CPU-bound processes of the busy-host rows (default: one per CPU)")
    p.add_argument("--workdir", default="",
                   help="workspace (layers are kept there between runs; default "
                        "/var/tmp/veneer-bench, or -quick with --quick)")
    p.add_argument("--results", default="",
                   help="where to write RESULTS.md (default bench/RESULTS.md; with --quick only "
                        "when given); '-' to not write it")
    p.add_argument("--veneer-build", default="",
                   help="veneer build directory (default $VENEER_BUILD, else build/)")
    p.add_argument("--timeout", type=float, default=0,
                   help="seconds one run of one target may take before it is aborted")
    a = p.parse_args(argv)
    only = [x.strip() for x in a.only.split(",") if x.strip()] or WORKLOADS
    for w in only:
        if w not in WORKLOADS:
            p.error(f"--only: unknown workload '{w}' (known: {', '.join(WORKLOADS)})")
    targets = [x.strip() for x in a.targets.split(",") if x.strip()] or UNION_TARGETS + PROC_TARGETS
    for t in targets:
        if t not in UNION_TARGETS + EXTRA_UNION_TARGETS + PROC_TARGETS:
            p.error(f"--targets: unknown target '{t}'")
    if a.reps and a.reps < 3:
        p.error(f"--reps: {a.reps} is below 3 (a median needs at least 3 runs)")
    if a.big_mib < 0:
        p.error(f"--big-mib: {a.big_mib} is negative")
    if a.load < 0:
        p.error(f"--load: {a.load} is negative")
    a.only = only
    a.target_list = targets
    return a


def main(argv):
    a = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/run: needs root (mounts, cgroups, drop_caches)", file=sys.stderr)
        return 2
    sizes = quick_sizes() if a.quick else Sizes()
    if a.huge:
        sizes.huge_dirs, sizes.huge_files_per_dir = 1000, 1000
    if a.reps:
        sizes.reps = a.reps
    if a.big_mib:
        sizes.big_mib = a.big_mib
    if a.load:
        sizes.busy_load = a.load
    ws = os.path.abspath(a.workdir or ("/var/tmp/veneer-bench" + ("-quick" if a.quick else "")))
    build = os.path.abspath(a.veneer_build or os.environ.get("VENEER_BUILD")
                            or os.path.join(REPO, "build"))
    results_path = a.results or ("" if a.quick else os.path.join(BENCH, "RESULTS.md"))
    timeout = a.timeout or (120 if a.quick else 1800)
    os.makedirs(ws, exist_ok=True)
    lock = os.open(os.path.join(ws, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"bench/run: another run uses the workspace {ws} (--workdir)", file=sys.stderr)
        return 2

    reaper = Reaper(ws)
    reaper.install_signals()
    res = Results()
    sections = []
    notes = []
    utargets = [t for t in UNION_TARGETS + EXTRA_UNION_TARGETS if t in a.target_list]
    ptargets = [t for t in PROC_TARGETS if t in a.target_list]
    t_start = time.monotonic()
    status = 0
    try:
        layers = Layers(ws, sizes, log)
        trash = Trash(ws)
        trash.empty()
        ut = UnionTargets(ws, reaper, build, timeout, trash)
        pod = PodBench(ws, reaper, layers, sizes,
                       {t: ut.binary(t) for t in ("veneer-unionfs", "veneer-uring",
                                                  "veneer-devfuse", "fuse-overlayfs")},
                       log, timeout)
        wl = Workloads(layers, sizes, timeout, trash, pod)
        for wid, rows, setup, fn in wl.table():
            targets = [t for t in utargets if any(r.applies(t) for r in rows)]
            if wid not in a.only or not targets:
                continue
            sections.append((rows, targets, REFERENCE, "fuse-overlayfs"))
            lowers, plain = setup()
            for rep in range(sizes.reps):
                for t in targets:
                    run_union(ut, res, rows, t, lowers, plain, fn, wid, rep, sizes.reps,
                              0 if a.quick else 5)
            pod.close()
            trash.empty()
        if "proc" in a.only and ptargets:
            pb = ProcBench(ws, reaper, sizes, build, log)
            sections.append((proc_rows(sizes.proc_containers), ptargets, PROC_REFERENCE, None))
            for n in sizes.proc_containers:
                for rep in range(sizes.reps):
                    for t in ptargets:
                        run_proc(pb, res, t, n, rep, sizes.reps, timeout)
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'Ctrl-C'}): cleaning up")
        status = 130
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for err in reaper.unwind():
            log(f"cleanup: {err}")
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if status:
        return status

    lines = table(sections, res, sizes.reps)
    print("\n".join(lines))
    judged = verdicts([r for rows, *_ in sections for r in rows], res, sizes)
    print("\n" + "\n".join(judged))
    elapsed = time.monotonic() - t_start
    incomplete = sorted({f"{t}: {k}" for (k, t), v in res.errors.items()
                         if not res.samples.get((k, t))})
    notes.append(f"wall time of the whole run: {elapsed / 60:.1f} min")
    for (k, t), msgs in sorted(res.errors.items()):
        if res.samples.get((k, t)):
            notes.append(f"{t} {k}: {len(msgs)} failed run(s), e.g. {msgs[0][:200]}")
    if results_path and results_path != "-":
        versions = [(t, version_of(t, os.path.join(build, "unionfs", "veneer-unionfs")))
                    for t in utargets]
        versions += [(t, proc_version(t, os.path.join(build, "procfs", "veneer-procfs")))
                     for t in ptargets]
        versions.append(("fio", version_of_cmd(["fio", "--version"])))
        versions.append(("veneer source", version_of_cmd(
            ["git", "-C", REPO, "log", "-1", "--format=%h %cd %s", "--date=iso"]) + (
            " (+ uncommitted changes in the work tree)" if version_of_cmd(
                ["git", "-C", REPO, "status", "--porcelain", "--", "unionfs", "procfs",
                 "common"]) not in ("", "exit 0") else "")))
        versions.append(("veneer build", f"{build} (buildtype "
                         f"{_buildtype(build)})"))
        cmd = "bench/run " + " ".join(shlex.quote(x) for x in argv)
        write_results(results_path, cmd.strip(), lines, versions, sizes.describe(), notes,
                      judged)
        log(f"wrote {results_path}")
    if incomplete:
        log(f"{len(incomplete)} rows have no value")
        return 1
    return 0


def _buildtype(build):
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            import json
            for o in json.load(f):
                if o["name"] in ("buildtype",):
                    return o["value"]
    except (OSError, ValueError):
        pass
    return "?"


def version_of_cmd(argv):
    from union_targets import first_line
    return first_line(argv)


def record(res, rows, target, vals, err):
    for r in rows:
        if err is None and r.key in vals:
            res.add(r.key, target, vals[r.key])
        elif err is not None:
            res.fail(r.key, target, err)


def run_union(ut, res, rows, t, lowers, plain, fn, wid, rep, reps, settle):
    why = ut.missing(t)
    if why:
        record(res, rows, t, None, why)
        log(f"w{wid} {rep + 1}/{reps} {t}: skipped: {why}")
        return
    t0 = time.monotonic()
    vals, err = None, None
    try:
        os.sync()  # earlier runs' dirty data must not be written back during this one
        if settle:
            quiesce(ut.trash.dev, settle)
        if getattr(fn, "no_mount", False):
            run = Run(t, None)
        else:
            run = ut.mount(t, lowers, plain, getattr(fn, "mount_opts", {}).get(t))
        try:
            vals = fn(run)
        finally:
            timed_out = run.timed_out
            run.close()
        if timed_out:
            err = "timed out (connection aborted)"
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        if os.environ.get("VENEER_BENCH_DEBUG"):
            traceback.print_exc()
    record(res, rows, t, vals, err)
    shown = err or ", ".join(f"{k}={v:.4g}" for k, v in vals.items())
    log(f"w{wid} {rep + 1}/{reps} {t}: {shown} ({time.monotonic() - t0:.1f}s)")


def run_proc(pb, res, t, n, rep, reps, timeout):
    rows = proc_rows([n])
    why = pb.missing(t)
    if why:
        record(res, rows, t, None, why)
        log(f"proc n={n} {rep + 1}/{reps} {t}: skipped: {why}")
        return
    vals, err = None, None
    try:
        vals = pb.run(t, n, timeout)
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
        if os.environ.get("VENEER_BENCH_DEBUG"):
            traceback.print_exc()
    record(res, rows, t, vals, err)
    shown = err or ", ".join(f"{k}={v:.4g}" for k, v in vals.items())
    log(f"proc n={n} {rep + 1}/{reps} {t}: {shown}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
