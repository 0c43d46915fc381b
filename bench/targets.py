# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue 6's speed targets as data, judged on the medians of one run.

Each check names a row, the reference it is measured against and the bound the
ratio (or, for absolute rows, the value) must meet; the verdict table says met,
missed or not measured. It judges only what the run measured: a row left out
with --only, or run at other sizes, says so instead of guessing.
"""
from dataclasses import dataclass

from report import NO_VALUE, fmt, ratio

VENEER_UNION = "veneer-unionfs"
VENEER_PROC = "veneer-procfs"


@dataclass
class Check:
    goal: str          # the words, shortened
    key: str           # row key
    target: str        # whose value is judged
    ref: str           # reference target ("" for an absolute bound)
    op: str            # ">=" or "<" or "=="
    bound: float


def _metadata(keys):
    out = []
    for k in keys:
        out.append(Check("metadata within 2x of kernel overlayfs", k, VENEER_UNION,
                         "kernel-overlay", ">=", 0.5))
        out.append(Check("metadata >= 3x faster than fuse-overlayfs", k, VENEER_UNION,
                         "fuse-overlayfs", ">=", 3.0))
    return out


def checks(proc_containers=100):
    c = _metadata(["3.create", "3.stat", "3.unlink", "4.find.warm", "4.du.warm", "5", "7", "9"])
    for k in ("1.warm", "8.j1", "8.j4"):
        c.append(Check("warm reads >= 0.8x kernel overlayfs", k, VENEER_UNION,
                       "kernel-overlay", ">=", 0.8))
    for k in ("6.append", "6.chmod"):
        c.append(Check("copy-up within 1.2x of kernel overlayfs", k, VENEER_UNION,
                       "kernel-overlay", ">=", 1 / 1.2))
    c.append(Check("chmod of the big lower file copies no data", "6.chmod.data", VENEER_UNION,
                   "", "==", 0.0))
    c.append(Check("daemon RSS < 100 MiB after walking the big tree", "10.rss", VENEER_UNION,
                   "", "<", 100.0))
    n = proc_containers
    for f in ("meminfo", "cpuinfo", "stat"):
        c.append(Check(f"/proc: >= 3x lxcfs reads/s at {n} containers", f"P.{f}.{n}.rate",
                       VENEER_PROC, "lxcfs", ">=", 3.0))
        c.append(Check(f"/proc: less daemon CPU per read than lxcfs at {n} containers",
                       f"P.{f}.{n}.cpu", VENEER_PROC, "lxcfs", ">=", 1.0))
    return c


def _holds(v, op, bound):
    if op == ">=":
        return v >= bound
    if op == "<":
        return v < bound
    return v == bound


HUGE_FILES = 1_000_000


def verdicts(rows, results, proc_containers=100, huge_files=HUGE_FILES):
    """Markdown lines: one per check, with the measured value and the verdict."""
    by_key = {r.key: r for r in rows}
    out = ["| goal | row | measured | bound | verdict |", "|---|---|---|---|---|"]
    met = missed = 0
    for c in checks(proc_containers):
        row = by_key.get(c.key)
        v = results.median(c.key, c.target)
        if c.key.startswith("10.") and v is not None and huge_files < HUGE_FILES:
            out.append(f"| {c.goal} | {c.key} | {fmt(v)} {row.unit} at {huge_files:,} files | "
                       f"{c.op} {fmt(c.bound)} {row.unit} at {HUGE_FILES:,} files | "
                       "not judged: the target is at 1,000,000 files (--huge) |")
            continue
        if row is None or v is None:
            out.append(f"| {c.goal} | {c.key} | {NO_VALUE} | {c.op} {fmt(c.bound)} | "
                       "not measured in this run |")
            continue
        if c.ref:
            r = ratio(row, v, results.median(c.key, c.ref))
            if r is None:
                out.append(f"| {c.goal} | {c.key} | {NO_VALUE} | {c.op} {fmt(c.bound)}x "
                           f"{c.ref} | not measured in this run ({c.ref} has no value) |")
                continue
            shown, bound = f"{fmt(r)}x {c.ref}", f"{c.op} {fmt(c.bound)}x"
            ok = _holds(r, c.op, c.bound)
        else:
            shown, bound = f"{fmt(v)} {row.unit}", f"{c.op} {fmt(c.bound)} {row.unit}"
            ok = _holds(v, c.op, c.bound)
        met += ok
        missed += not ok
        out.append(f"| {c.goal} | {row.wid} {row.name} ({c.key}) | {shown} | {bound} | "
                   f"{'met' if ok else '**missed**'} |")
    out.append("")
    out.append(f"{met} met, {missed} missed (of the checks this run measured)")
    return out
