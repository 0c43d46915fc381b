# SPDX-License-Identifier: GPL-2.0-or-later
"""Medians, min/max and ratios of the collected samples as one markdown table,
and bench/RESULTS.md around it (machine, versions, sizes, command)."""
import os
import platform
import statistics
import subprocess
import time

NO_VALUE = "—"


def fmt(v):
    if v is None:
        return NO_VALUE
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 0.01 or a == 0:
        return f"{v:.3f}".rstrip("0").rstrip(".") if a else "0"
    return f"{v:.2e}"


def ratio(row, v, ref):
    """Speed of v relative to ref: > 1 means v is better, whatever the unit."""
    if v is None or ref is None or not row.better:
        return None
    if row.better == "higher":
        return v / ref if ref else None
    return ref / v if v else None


class Results:
    def __init__(self):
        self.samples = {}   # (row key, target) -> [values]
        self.errors = {}    # (row key, target) -> [messages]

    def add(self, key, target, value):
        self.samples.setdefault((key, target), []).append(float(value))

    def fail(self, key, target, msg):
        self.errors.setdefault((key, target), []).append(msg)

    def median(self, key, target):
        v = self.samples.get((key, target))
        return statistics.median(v) if v else None

    def cell_stats(self, key, target):
        v = self.samples.get((key, target))
        if not v:
            return None, None, None
        return statistics.median(v), min(v), max(v)


def table(sections, results, reps):
    """sections: [(rows, targets, reference target, second reference or None)]."""
    head = ("| # | workload | cache | target | median | min | max | unit | vs ref | "
            "vs fuse-overlayfs | runs |")
    out = [head, "|" + "---|" * 11]
    for rows, targets, ref, ref2 in sections:
        for row in rows:
            for t in targets:
                if (row.daemon_only and t in ("kernel-overlay", "plain")) or not row.applies(t):
                    continue
                med, lo, hi = results.cell_stats(row.key, t)
                n = len(results.samples.get((row.key, t), []))
                if med is None:
                    errs = results.errors.get((row.key, t), ["no samples"])
                    msg = errs[-1].replace("|", "/").replace("\n", " ")[:160]
                    cells = [f"error: {msg}", NO_VALUE, NO_VALUE]
                else:
                    cells = [fmt(med), fmt(lo), fmt(hi)]
                r1 = ratio(row, med, results.median(row.key, ref))
                r2 = ratio(row, med, results.median(row.key, ref2)) if ref2 else None
                r1s = f"{fmt(r1)}x" if r1 is not None else NO_VALUE
                r2s = f"{fmt(r2)}x" if r2 is not None else NO_VALUE
                out.append(f"| {row.wid} | {row.name} | {row.cache} | {t} | " + " | ".join(cells)
                           + f" | {row.unit} | {r1s} | {r2s} | {n}/{reps} |")
    return out


def _cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine():
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return [f"nproc: {os.cpu_count()} ({cpu})", f"memory: {mem}",
            f"kernel: {platform.release()}",
            f"os: {_cmd(['sh', '-c', '. /etc/os-release && echo $PRETTY_NAME'])}"]


def legend():
    return [
        "Each run mounts the target afresh over fresh upper/work directories (the read-only "
        "lowers are shared); targets run interleaved (A B C A B C ...); the table shows the "
        "median over the runs, with min and max.",
        "cold: `sync; echo 3 > /proc/sys/vm/drop_caches` after mounting, before the timed "
        "operation; warm: the same data was read once before the timed operation "
        "(through the mount, or for copy-up and untar, the lower file/tarball).",
        "vs ref: speed relative to kernel overlayfs (union rows) or lxcfs (/proc rows); "
        "vs fuse-overlayfs likewise. > 1 is faster (or less CPU) than the reference, "
        "whatever the unit; 0.5x means twice as slow.",
        "Before each run: `sync`, then up to 5 s for the disk to have no I/O in flight; "
        "what runs leave behind is deleted only between workloads (deleting on this ext4 "
        "-o discard disk stalls the writes that follow).",
        "plain: the same operations on a plain ext4 directory holding the merged content "
        "(the control).",
        "Workload 11 (podman build + run): each target has a private podman store of its own "
        "(root, run root, config, runc state, cgroup parent); kernel-overlay is podman's "
        "native overlay driver, veneer-unionfs and fuse-overlayfs its overlay.mount_program; "
        "the base image (busybox-static plus the host's gcc) is imported from a local tarball; "
        "timed from the start of `podman build --no-cache` to the end of `podman run`.",
        "Workload 12: the kernel overlay is mounted with lowerdir paths relative to the "
        "layers' parent (500 absolute paths exceed mount(2)'s one-page option limit); cold: "
        "caches dropped after mounting, then every name stated once; warm: stated again.",
        "veneer-unionfs runs with its defaults: -o uring=auto takes requests through FUSE over "
        "io_uring when the kernel offers it (Y in /sys/module/fuse/parameters/enable_uring), "
        "else through /dev/fuse. Only when named in --targets: veneer-uring is -o uring=on "
        "(io_uring or no mount), veneer-devfuse -o uring=off (/dev/fuse only).",
        "busy host: the rows of workloads 3, 7 and 9 while `stress-ng --cpu N --cpu-method "
        "int64` (N CPU-bound processes, one per CPU unless --load says otherwise) runs, "
        "started after the mount and stopped after the workload, the same for every target.",
        "/proc rows: each container is a reader in its own pid+mount namespace and its own "
        "cgroup (memory 512 MiB, cpu quota 2 CPUs), with the daemon's files bind-mounted "
        "over its /proc; all containers loop open/read/close on the file concurrently; "
        "daemon CPU is utime+stime from /proc/PID/stat of the daemon and its children "
        "(veneer-procfs serves from a worker child), sampled around each phase; "
        "daemon RSS and fds (workload 10) are likewise summed over the daemon's processes.",
    ]


def write_results(path, command, lines, versions, sizes_desc, notes, judged=()):
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    doc = ["# veneer benchmark results", "",
           "What bounds each missed target, with profiles: bench/ANALYSIS.md "
           "(written by hand; it quotes a run of this file).", "",
           f"Produced {now} by:", "", "```sh", command, "```", "",
           "## Machine", ""] + [f"- {m}" for m in machine()] + [
           "", "## Versions", ""] + [f"- {k}: {v}" for k, v in versions] + [
           "", "## Sizes", ""] + [f"- {s}" for s in sizes_desc] + [
           "", "## Method", ""] + [f"- {x}" for x in legend()] + [
           "", "## Results", ""] + lines
    if judged:
        doc += ["", "## Issue 13's targets (and issue 6's that stand), judged on this run's "
                "medians", ""] + list(judged)
    if notes:
        doc += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(doc) + "\n")
    os.replace(tmp, path)
