# SPDX-License-Identifier: GPL-2.0-or-later
"""Smoke run of the benchmark (bench/run --quick) so it never rots.

One tiny run of every workload on every target; the tests check that the
table has a numeric median, min and max for each target and workload row,
that RESULTS.md says what was measured and how, and that nothing (mount,
daemon, cgroup) is left behind. Timings are never asserted.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from veneer_harness import REPO, SANITIZER_MARKERS, build_dir, lazy_umount, mounts_below, \
    pids_mentioning, remove_cgroup, require

BENCH = os.path.join(REPO, "bench")
UNION_TARGETS = ["kernel-overlay", "veneer-unionfs", "fuse-overlayfs", "unionfs-fuse", "plain"]
PROC_TARGETS = ["veneer-procfs", "lxcfs"]
DAEMONS = {"veneer-unionfs", "fuse-overlayfs", "unionfs-fuse"}
# The issues' workloads; the driver must not drop one.
WORKLOAD_IDS = [str(i) for i in range(1, 13)] + ["busy", "P"]
TOOLS = ["fuse-overlayfs", "unionfs-fuse", "lxcfs", "fio", "unshare", "cc", "tar", "find", "du",
         "podman", "runc", "stress-ng"]


def _bench_import(*names):
    sys.path.insert(0, BENCH)
    try:
        return [__import__(n) for n in names]
    finally:
        sys.path.remove(BENCH)


def _expected_rows():
    layers, procbench, union_workloads = _bench_import("layers", "procbench", "union_workloads")
    proc_rows, Workloads = procbench.proc_rows, union_workloads.Workloads
    sizes = layers.quick_sizes()
    union = [r for _, rows, _, _ in Workloads(None, sizes, 1).table() for r in rows]
    return union, proc_rows(sizes.proc_containers)


def _table_lines(text, header):
    """The lines of the markdown table that starts with header (up to the first other line)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            out = []
            for ln in lines[i + 2:]:
                if not ln.startswith("| "):
                    break
                out.append(ln)
            return out
    return []


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _parse_table(text):
    """{(workload name, cache, target): [cells]} from the results table."""
    rows = {}
    for line in _table_lines(text, "| # | workload |"):
        cells = _cells(line)
        rows[(cells[1], cells[2], cells[3])] = cells
    return rows


def _processes_using(path):
    """Pids whose command line names a path below the workspace (daemons left running)."""
    return [pid for pid, _ in pids_mentioning(path, skip_zombies=False)]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    require(os.geteuid() == 0, "needs root")
    require(os.path.exists("/dev/fuse"), "no /dev/fuse")
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    with open("/proc/filesystems") as f:
        require(any(ln.split()[-1] == "overlay" for ln in f if ln.strip()), "no kernel overlay")
    for t in TOOLS:
        require(shutil.which(t) is not None, f"{t} is not installed (scripts/bootstrap --all)")
    for rel in ("unionfs/veneer-unionfs", "procfs/veneer-procfs"):
        p = os.path.join(build_dir(), rel)
        require(os.access(p, os.X_OK), f"{p} is not built")
    tmp = str(tmp_path_factory.mktemp("bench"))
    ws = os.path.join(tmp, "ws")
    results = os.path.join(tmp, "RESULTS.md")
    proc = subprocess.Popen([os.path.join(BENCH, "run"), "--quick", "--workdir", ws,
                             "--results", results, "--veneer-build", build_dir()],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.terminate()  # bench/run unwinds its mounts, daemons and cgroups on SIGTERM
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    left = {"mounts": mounts_below(ws),
            "cgroups": glob.glob(f"/sys/fs/cgroup/*/veneer-bench-{proc.pid}"),
            "processes": _processes_using(ws)}
    for pid in left["processes"]:  # recorded for test_bench_cleans_up; not left running
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for mp in reversed(left["mounts"]):
        lazy_umount(mp)
    for cg in left["cgroups"]:
        remove_cgroup(cg)
    logs = {}
    # Daemons log to NAME.log; sanitizer reports of podman's mount programs to NAME.log.PID.
    for p in glob.glob(os.path.join(ws, "logs", "*.log*")):
        with open(p, errors="replace") as f:
            logs[os.path.basename(p)] = f.read()
    md = ""
    if os.path.exists(results):
        with open(results) as f:
            md = f.read()
    yield {"rc": proc.returncode, "out": out, "err": err, "table": _parse_table(out), "md": md,
           "left": left, "logs": logs}
    shutil.rmtree(tmp, ignore_errors=True)


def test_bench_quick_exits_zero(quick):
    assert quick["rc"] == 0, quick["err"][-3000:]


def test_bench_cleans_up(quick):
    assert quick["left"] == {"mounts": [], "cgroups": [], "processes": []}


def test_bench_daemons_have_no_sanitizer_report(quick):
    bad = {n: t for n, t in quick["logs"].items() if any(m in t for m in SANITIZER_MARKERS)}
    assert not bad, "\n".join(f"{n}:\n{t[-2000:]}" for n, t in bad.items())


def test_table_has_every_workload(quick):
    ids = {cells[0] for cells in quick["table"].values()}
    assert ids == set(WORKLOAD_IDS)


@pytest.mark.parametrize("target", UNION_TARGETS + PROC_TARGETS)
def test_table_row_numeric(quick, target):
    union, procr = _expected_rows()
    rows = union if target in UNION_TARGETS else procr
    missing, bad = [], []
    for r in rows:
        if (r.daemon_only and target not in DAEMONS) or not r.applies(target):
            continue
        cells = quick["table"].get((r.name, r.cache, target))
        if cells is None:
            missing.append(r.key)
            continue
        med, lo, hi = cells[4:7]
        try:
            vals = [float(med), float(lo), float(hi)]
        except ValueError:
            bad.append(f"{r.key}: {med}")
            continue
        if not (vals[1] <= vals[0] <= vals[2]) or cells[10] != "3/3":
            bad.append(f"{r.key}: median {med} min {lo} max {hi} runs {cells[10]}")
        if r.better and target not in ("kernel-overlay", "lxcfs"):
            assert re.fullmatch(r"[0-9.e+-]+x", cells[8]), f"{r.key}: ratio '{cells[8]}'"
    assert not missing, f"{target}: rows missing from the table: {missing}"
    assert not bad, f"{target}: rows without numeric values: {bad[:5]}"


def test_results_md_says_how(quick):
    md = quick["md"]
    for needle in ("## Machine", "nproc:", "memory:", "kernel:", "## Versions", "fuse-overlayfs",
                   "lxcfs", "## Sizes", "bench/run --quick", "| # | workload |"):
        assert needle in md, f"RESULTS.md lacks {needle!r}"
    assert len(_table_lines(md, "| # | workload |")) == len(quick["table"])  # every printed row


def test_targets_are_judged(quick):
    """Every target of issue 13 (and of issue 6 that stands) gets a verdict line, in the
    output and in RESULTS.md, and the verdicts follow from the table (quick sizes: the
    1,000,000-file rows are not judged)."""
    layers, targets = _bench_import("layers", "targets")
    checks = targets.checks(layers.quick_sizes())
    for text in (quick["out"], quick["md"]):
        lines = _table_lines(text, "| goal | row |")
        assert len(lines) == len(checks), text[-3000:]
        for line in lines:
            verdict = _cells(line)[4]
            assert verdict in ("met", "**missed**") or verdict.startswith("not "), line
        assert re.search(r"^\d+ met, \d+ missed", text, re.M), text[-2000:]
    judged = [(_cells(ln)[1], _cells(ln)[4]) for ln in _table_lines(quick["out"], "| goal | row |")]
    huge = [c.key for c in checks if c.huge]
    assert huge and all(v.startswith("not judged") for k, v in judged if k in huge), judged
    assert sum(v in ("met", "**missed**") for _, v in judged) == len(checks) - len(huge), judged
