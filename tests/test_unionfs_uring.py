# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs with -o uring: requests through FUSE over io_uring (common/fuse-uring.c).

The kernel offers io_uring only with Y in /sys/module/fuse/parameters/enable_uring
(scripts/bootstrap turns it on). uring=auto is veneer-unionfs's default, so every suite
runs over the rings, and the union suites run once more with uring=off (meson test
"pytest-devfuse"); the tests here check
the transport itself: requests reach the ring threads and not the /dev/fuse threads,
a failed ring setup or a REGISTER the kernel refuses falls back to /dev/fuse without
stranding a request (or fails the mount with uring=on), data of every size crosses
the payload buffers intact, and the daemon unmounts and exits cleanly.
"""
import hashlib
import os
import signal
import subprocess
import time

import pytest

from veneer_harness import mounted_at, pids_mentioning, require, sanitizer_env

ENABLE = "/sys/module/fuse/parameters/enable_uring"
N_OPS = 300


@pytest.fixture
def need_uring(need_fuse):
    require(os.path.exists(ENABLE), "the kernel has no FUSE over io_uring (CONFIG_FUSE_IO_URING)")
    with open(ENABLE) as f:
        require(f.read().strip() == "Y", f"{ENABLE} is not Y (scripts/bootstrap turns it on)")


def _threads(pid):
    """{tid: (comm, voluntary context switches)} of the daemon's threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                vol = next(int(ln.split()[1]) for ln in f
                           if ln.startswith("voluntary_ctxt_switches"))
        except (OSError, StopIteration):
            continue
        out[tid] = (comm, vol)
    return out


def _switches(before, after):
    """Voluntary switches of ring threads and of the other threads between two samples."""
    ring = other = 0
    for tid, (comm, vol) in after.items():
        d = vol - before.get(tid, (comm, 0))[1]
        if comm.startswith("fuse-ring-"):
            ring += d
        else:
            other += d
    return ring, other


def _metadata_ops(m, n=N_OPS):
    """Create, write, stat and list n files; the voluntary context switches of the ring
    threads and of the /dev/fuse threads meanwhile. Then remove them (untimed: each
    unlink brings a FORGET, which always comes through /dev/fuse)."""
    d = os.path.join(m.path, "ops")
    before = _threads(m.daemon.proc.pid)
    os.mkdir(d)
    for i in range(n):
        p = os.path.join(d, f"f{i}")
        with open(p, "w") as f:
            f.write(str(i))
        os.stat(p)
    assert len(os.listdir(d)) == n
    counts = _switches(before, _threads(m.daemon.proc.pid))
    for i in range(n):
        os.unlink(os.path.join(d, f"f{i}"))
    os.rmdir(d)
    return counts


def _layers(harness):
    lower = harness.mkdir("lower")
    with open(os.path.join(lower, "hello"), "w") as f:
        f.write("hello\n")
    return lower, harness.mkdir("upper"), harness.mkdir("work")


def _mount(harness, opts, env=None):
    lower, upper, work = _layers(harness)
    return harness.mount_unionfs([lower], upper, work, opts=opts, env=env)


def test_requests_come_through_the_rings(harness, need_uring, monkeypatch):
    """With uring=on, and with no -o uring at all (the default is auto), the ring threads
    serve the requests and the /dev/fuse threads stay idle; with uring=off it is the other
    way round (so the test can fail)."""
    monkeypatch.delenv("VENEER_UNIONFS_OPTS", raising=False)
    for mode in ("default", "on", "off"):
        m = _mount(harness, [] if mode == "default" else [f"uring={mode}"])
        rings = [c for c, _ in _threads(m.daemon.proc.pid).values() if c.startswith("fuse-ring-")]
        ring, other = _metadata_ops(m)
        if mode != "off":
            # A queue per CPU, 2 threads each by default.
            assert len(rings) == 2 * os.cpu_count(), rings
            assert ring >= N_OPS and other < N_OPS // 10, (ring, other)
        else:
            assert not rings
            # Served (the operations succeeded) and by no ring thread; how often the
            # /dev/fuse threads sleep depends on the load, so only that they woke.
            assert other > 0 and ring == 0, (ring, other)
        harness.umount(m)


def test_uring_threads_option(harness, need_uring):
    m = _mount(harness, ["uring=on", "uring_threads=3"])
    rings = [c for c, _ in _threads(m.daemon.proc.pid).values() if c.startswith("fuse-ring-")]
    assert len(rings) == 3 * os.cpu_count(), rings
    ring, other = _metadata_ops(m, 20)
    # The /dev/fuse threads may wake a few times for their own reasons (an ASan CI run saw 5
    # against 151 ring wake-ups); requests served there would wake them as often as the rings.
    assert ring >= 20 and other * 10 <= ring, (ring, other)


@pytest.mark.parametrize("opt", ["uring=maybe", "uring_threads=0", "uring_threads=65"])
def test_bad_uring_options_are_refused(harness, unionfs_bin, opt):
    lower, upper, work = _layers(harness)
    mnt = harness.mkdir("mnt")
    r = subprocess.run([unionfs_bin, "-f", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work},{opt}", mnt],
                       capture_output=True, text=True, timeout=30, env=sanitizer_env())
    assert r.returncode == 2, r.stderr
    assert opt.split("=")[0] in r.stderr and opt.split("=")[1] in r.stderr, r.stderr
    assert not mounted_at(mnt)


@pytest.mark.parametrize("fault", ["setup", "register"])
def test_failed_ring_setup_falls_back_to_dev_fuse(harness, need_uring, fault):
    """INIT asked for io_uring, then the rings could not be set up (a thread's setup
    failed, or the kernel refused every REGISTER): with uring=auto the kernel is sent
    back to /dev/fuse and no request is left waiting for a ring."""
    env = dict(os.environ, VENEER_URING_FAULT=fault)
    m = _mount(harness, ["uring=auto"], env=env)
    with open(os.path.join(m.path, "hello")) as f:
        assert f.read() == "hello\n"
    ring, other = _metadata_ops(m)
    # No ring thread woke; the /dev/fuse threads did (how often they sleep between
    # requests depends on the machine's load: a CI run saw 215 switches for 300 files).
    assert ring == 0 and other > 0, (ring, other)
    assert "using /dev/fuse" in m.daemon.output()


@pytest.mark.parametrize("fault", ["setup", "register"])
def test_failed_ring_setup_fails_uring_on(harness, unionfs_bin, need_uring, fault):
    lower, upper, work = _layers(harness)
    mnt = harness.mkdir("mnt")
    r = subprocess.run([unionfs_bin, "-f", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work},uring=on", mnt],
                       capture_output=True, text=True, timeout=60,
                       env=sanitizer_env(dict(os.environ, VENEER_URING_FAULT=fault)))
    assert r.returncode == 1, r.stderr
    assert "uring=on" in r.stderr, r.stderr
    assert not mounted_at(mnt)
    assert os.listdir(upper) == [] and os.listdir(lower) == ["hello"]


def test_one_refused_entry_keeps_the_others(harness, need_uring):
    """The kernel refuses one thread's REGISTER; every queue still has an entry, so the
    remaining threads serve (once a queue set is complete the kernel sends requests only
    to the rings: giving up then would strand them)."""
    env = dict(os.environ, VENEER_URING_FAULT="register1")
    m = _mount(harness, ["uring=on"], env=env)
    rings = [c for c, _ in _threads(m.daemon.proc.pid).values() if c.startswith("fuse-ring-")]
    assert len(rings) == 2 * os.cpu_count() - 1, rings
    ring, other = _metadata_ops(m)
    assert ring >= N_OPS and other < N_OPS // 10, (ring, other)


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


@pytest.mark.parametrize("passthrough", ["on", "off"])
def test_data_of_every_size_crosses_intact(harness, need_uring, passthrough):
    """Reads and writes up to the largest request (1 MiB) through the payload buffers:
    with passthrough=off every byte goes through the daemon."""
    lower, upper, work = _layers(harness)
    blob = os.urandom(3 << 20)
    with open(os.path.join(lower, "big"), "wb") as f:
        f.write(blob)
    m = harness.mount_unionfs([lower], upper, work, opts=["uring=on",
                                                          f"passthrough={passthrough}"])
    for size in (1, 4095, 4096, 65536, 131073, 1 << 20, (1 << 20) + 1):
        with open(os.path.join(m.path, "big"), "rb", buffering=0) as f:
            f.seek(12345)
            got = b""
            while len(got) < size:
                chunk = f.read(size - len(got))
                assert chunk
                got += chunk
        assert got == blob[12345:12345 + size], size
    out = os.path.join(m.path, "written")
    with open(out, "wb", buffering=0) as f:
        for size in (1, 4096, 65537, 1 << 20, 3 << 20):
            f.write(blob[:size])
    want = hashlib.sha256(b"".join(blob[:s] for s in (1, 4096, 65537, 1 << 20, 3 << 20)))
    assert _digest(out) == want.hexdigest()
    assert _digest(os.path.join(m.path, "big")) == hashlib.sha256(blob).hexdigest()
    names = sorted(f"n{i:04d}-" + "x" * 200 for i in range(300))  # a long listing
    for n in names:
        os.mknod(os.path.join(m.path, n))
    assert sorted(x for x in os.listdir(m.path) if x.startswith("n")) == names


@pytest.mark.parametrize("how", ["sigterm", "umount"])
def test_daemon_exits_cleanly_with_rings(harness, need_uring, how):
    m = _mount(harness, ["uring=on"])
    _metadata_ops(m, 50)
    if how == "sigterm":
        m.daemon.proc.send_signal(signal.SIGTERM)
    else:
        subprocess.run(["umount", m.path], check=True, timeout=30)
    assert m.daemon.proc.wait(30) == 0, m.daemon.output()
    deadline = time.monotonic() + 10
    while mounted_at(m.path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not mounted_at(m.path)


def _background_mount_with_callers(harness, unionfs_bin, n, fault=None):
    """Mount n in the background while callers poll the mount point's file; returns the
    daemon's ring thread names once every caller got its answer, and unmounts."""
    lower, upper, work = _layers(harness)
    mnt = harness.mkdir(f"mnt{n}")
    asan = harness.mkdir(f"asan{n}")
    # Callers that read the file from before the mount until it answers, then go on
    # reading a while (the later REGISTERs meet a steady flow of requests); the shell's
    # own read, no fork per request.
    loop = (f"end=$(($(date +%s) + 30)); while [ $(date +%s) -lt $end ]; do "
            f"read -r x < {mnt}/hello 2>/dev/null && [ \"$x\" = hello ] && break; done; "
            f"i=0; while [ $i -lt 300 ]; do read -r x < {mnt}/hello && [ \"$x\" = hello ] "
            f"|| exit 1; i=$((i + 1)); done")
    procs = [subprocess.Popen(["taskset", "-c", str(i % os.cpu_count()), "sh", "-c", loop])
             for i in range(2 * os.cpu_count())]
    env = sanitizer_env(dict(os.environ, VENEER_URING_FAULT=fault) if fault else None)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):  # the background daemon has no stderr
        env[var] = env.get(var, "") + f":log_path={asan}/report"
    try:
        r = subprocess.run([unionfs_bin, "-o", f"lowerdir={lower},upperdir={upper},workdir={work},"
                            "uring=on", mnt], capture_output=True, text=True, timeout=60,
                           env=env)
        assert r.returncode == 0, r.stderr
        harness.defer(lambda: subprocess.run(["umount", "-l", mnt]) if mounted_at(mnt) else None)
        for p in procs:
            assert p.wait(30) == 0, "a caller got no answer (or a wrong one)"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    pids = [pid for pid, _ in pids_mentioning(mnt)]
    assert len(pids) == 1, pids
    rings = [c for c, _ in _threads(pids[0]).values() if c.startswith("fuse-ring-")]
    subprocess.run(["umount", mnt], check=True, timeout=30)
    deadline = time.monotonic() + 15
    while pids_mentioning(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pids_mentioning(mnt)
    reports = os.listdir(asan)
    assert not reports, [open(os.path.join(asan, n)).read() for n in reports]
    return rings


@pytest.mark.parametrize("fault", [None, "slow-register"])
def test_callers_waiting_for_the_rings_get_answers(harness, unionfs_bin, need_uring, fault):
    """podman runs its mount program in the background and uses the mount as soon as the
    program returns, before the daemon has registered its queues: those requests wait in
    the kernel and go to the entries as they are registered, so one may come back with
    the REGISTER itself. Every caller is answered and every ring thread stays (such a
    request once passed for a failed registration: the thread quit and the request was
    never answered; podman hung in 1 of ~4 mounts). slow-register makes that the rule."""
    for n in range(3):
        rings = _background_mount_with_callers(harness, unionfs_bin, n, fault)
        assert len(rings) == 2 * os.cpu_count(), (n, rings)
