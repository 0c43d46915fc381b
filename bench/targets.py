# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue 13's speed targets (and issue 6's that still stand) as data, judged on the
medians of one run.

Each check names a row, the reference it is measured against and the bound the
ratio (or, for absolute rows, the value) must meet; a growth check compares how a
row grows from the shallowest to the deepest layer stack for veneer and for the
reference. The verdict table says met, missed or not measured. It judges only what
the run measured: a row left out with --only, or run at other sizes, says so
instead of guessing.
"""
import resource
from dataclasses import dataclass

from report import NO_VALUE, fmt, ratio

VENEER_UNION = "veneer-unionfs"
VENEER_PROC = "veneer-procfs"
KERNEL = "kernel-overlay"
FUSE_OVERLAYFS = "fuse-overlayfs"
HUGE_FILES = 1_000_000


@dataclass
class Check:
    goal: str          # the words, shortened
    key: str           # row key
    target: str        # whose value is judged
    ref: str           # reference target ("" for an absolute bound)
    op: str            # ">=", "<", "<=", "==", or "growth" (key2 -> key grows less than ref's)
    bound: float
    key2: str = ""     # growth: the row of the shallow stack
    huge: bool = False  # the bound holds at 1,000,000 files (--huge) only


def checks(sizes):
    """The checks for a run at these sizes (container counts and stack depths come from it)."""
    c = []
    for k, what in (("3.create", "create"), ("3.unlink", "unlink"), ("7", "untar"),
                    ("9", "cp -a inside")):
        c.append(Check(f"{what} >= 0.5x kernel overlayfs", k, VENEER_UNION, KERNEL, ">=", 0.5))
    c.append(Check("find cold >= 0.5x kernel overlayfs", "4.find.cold", VENEER_UNION, KERNEL, ">=",
                   0.5))
    c.append(Check("du -s cold >= 1x kernel overlayfs", "4.du.cold", VENEER_UNION, KERNEL, ">=",
                   1.0))
    c.append(Check("find + du of 1,000,000 files cold >= 0.6x kernel", "10.walk", VENEER_UNION,
                   KERNEL, ">=", 0.6, huge=True))
    c.append(Check("daemon RSS < 100 MiB after walking 1,000,000 files", "10.rss", VENEER_UNION,
                   "", "<", 100.0, huge=True))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    c.append(Check(f"daemon fds <= 1/4 of the open-file limit ({limit})", "10.fds", VENEER_UNION,
                   "", "<=", limit / 4, huge=True))
    c.append(Check("chmod of the big lower file, metacopy=on, >= 0.5x kernel", "6.chmod",
                   VENEER_UNION, KERNEL, ">=", 0.5))
    for n in sizes.proc_containers:
        for f in ("meminfo", "cpuinfo", "stat"):
            c.append(Check(f"/proc: >= 3x lxcfs reads/s at {n} containers", f"P.{f}.{n}.rate",
                           VENEER_PROC, "lxcfs", ">=", 3.0))
            c.append(Check(f"/proc: >= 4x less daemon CPU per read than lxcfs at {n} containers",
                           f"P.{f}.{n}.cpu", VENEER_PROC, "lxcfs", ">=", 4.0))
    c.append(Check("podman build + run within 1.3x of podman's native overlay driver",
                   "11.total", VENEER_UNION, KERNEL, ">=", 1 / 1.3))
    c.append(Check("podman build + run in <= 0.5x fuse-overlayfs's time", "11.total",
                   VENEER_UNION, FUSE_OVERLAYFS, ">=", 2.0))
    lo, hi = min(sizes.stack_depths), max(sizes.stack_depths)
    for cache in ("cold", "warm"):
        c.append(Check(f"time per stat grows less than the kernel's from {lo} to {hi} layers",
                       f"12.{hi}.{cache}", VENEER_UNION, KERNEL, "growth", 1.0,
                       key2=f"12.{lo}.{cache}"))
    for k in ("3.create", "3.stat", "3.unlink", "7", "9"):
        c.append(Check("busy host: >= 1.5x fuse-overlayfs", f"busy.{k}", VENEER_UNION,
                       FUSE_OVERLAYFS, ">=", 1.5))
        c.append(Check("busy host: >= 0.3x kernel overlayfs", f"busy.{k}", VENEER_UNION, KERNEL,
                       ">=", 0.3))
    # Issue 6's targets that still stand.
    c.append(Check("(issue 6) stat within 2x of kernel overlayfs", "3.stat", VENEER_UNION, KERNEL,
                   ">=", 0.5))
    for k in ("1.warm", "8.j1", "8.j4"):
        c.append(Check("(issue 6) warm reads >= 0.8x kernel overlayfs", k, VENEER_UNION, KERNEL,
                       ">=", 0.8))
    c.append(Check("(issue 6) copy-up within 1.2x of kernel overlayfs", "6.append", VENEER_UNION,
                   KERNEL, ">=", 1 / 1.2))
    c.append(Check("(issue 6) chmod of the big lower file copies no data", "6.chmod.data",
                   VENEER_UNION, "", "==", 0.0))
    return c


def _holds(v, op, bound):
    if op == ">=":
        return v >= bound
    if op == "<":
        return v < bound
    if op == "<=":
        return v <= bound
    return v == bound


def _growth(results, c):
    """(veneer's growth, the reference's growth) from key2 to key, or None."""
    vals = [results.median(k, t) for t in (c.target, c.ref) for k in (c.key, c.key2)]
    if any(v is None or v <= 0 for v in vals):
        return None
    return vals[0] / vals[1], vals[2] / vals[3]


def verdicts(rows, results, sizes):
    """Markdown lines: one per check, with the measured value and the verdict."""
    by_key = {r.key: r for r in rows}
    out = ["| goal | row | measured | bound | verdict |", "|---|---|---|---|---|"]
    met = missed = 0
    for c in checks(sizes):
        row = by_key.get(c.key)
        v = results.median(c.key, c.target)
        if c.huge and v is not None and sizes.huge_files < HUGE_FILES:
            out.append(f"| {c.goal} | {c.key} | {fmt(v)} {row.unit} at {sizes.huge_files:,} "
                       f"files | {c.op} {fmt(c.bound)} at {HUGE_FILES:,} files | "
                       "not judged: the target is at 1,000,000 files (--huge) |")
            continue
        if row is None or v is None:
            out.append(f"| {c.goal} | {c.key} | {NO_VALUE} | {c.op} {fmt(c.bound)} | "
                       "not measured in this run |")
            continue
        if c.op == "growth":
            g = _growth(results, c)
            if g is None:
                out.append(f"| {c.goal} | {c.key} | {NO_VALUE} | growth < {c.ref}'s | "
                           f"not measured in this run ({c.key2} or {c.ref} has no value) |")
                continue
            shown = f"{fmt(g[0])}x (from {c.key2}); {c.ref}: {fmt(g[1])}x"
            bound = f"< {c.ref}'s growth"
            ok = g[0] < g[1]
        elif c.ref:
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
