# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs's FUSE passthrough: the kernel reads and writes layer files itself.

The data must be what the kernel's overlayfs gives for the same calls (read,
write, pwrite, append, truncate, sparse files, shared and private mmap, copy-up
while a lower file is open); passthrough must really be in effect (reads on an
open file complete while the daemon is stopped, and no READ/WRITE request
reaches it), fall back where the kernel refuses a backing file, and
-o passthrough=off must keep the old behaviour.
"""
import hashlib
import mmap
import os
import signal
import struct
import subprocess
import threading
import time

import pytest

from test_unionfs_budget import node_stats
from unionfs_diff import (ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER, ACL_USER, ACL_USER_OBJ, Diff,
                          acl_xattr, errno, read, read_as, write)
from veneer_harness import errno_of, require, sanitizer_env

MIB = 1 << 20


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


@pytest.fixture
def need_passthrough(harness):
    """The kernel must accept passthrough (Linux >= 6.9, CONFIG_FUSE_PASSTHROUGH)."""
    root = harness.mkdir("probe")
    for d in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(root, d))
    try:
        m = harness.mount_unionfs([f"{root}/l"], f"{root}/u", f"{root}/w", mnt=f"{root}/m",
                                  opts=["passthrough=on"])
    except RuntimeError as e:
        require(False, f"the kernel does not accept FUSE passthrough: {e}")
    harness.umount(m)


def pattern(n, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(256)) * (n // 256)


def requests(m, op):
    """How many FUSE requests of opcode op the daemon (run with -d) logged."""
    return m.daemon.output().count(f"opcode: {op} (")


def in_thread(fn, timeout):
    """Run fn in a thread; (finished within timeout, its result or exception)."""
    out = {}

    def run():
        try:
            out["v"] = fn()
        except Exception as e:  # handed to the test
            out["v"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    return t, out


def file_ops(s):
    """Every way to read and write a file's data; returns what each step saw."""
    r = []
    with open(s.p("big"), "rb") as f:                       # lower file, read
        f.seek(3 * MIB + 17)
        r.append(f.read(4096))
    fd = os.open(s.p("big"), os.O_RDWR)                      # copy-up, pwrite
    os.pwrite(fd, b"middle", 2 * MIB)
    r.append(os.pread(fd, 16, 2 * MIB - 5))
    os.close(fd)
    with open(s.p("new"), "wb") as f:                        # create, write
        f.write(pattern(MIB, 3))
    with open(s.p("new"), "ab") as f:                        # append
        f.write(b"tail")
    r.append(os.stat(s.p("new")).st_size)
    fd = os.open(s.p("new"), os.O_RDWR)
    os.ftruncate(fd, 1000)                                   # truncate, then size seen
    r.append((os.fstat(fd).st_size, os.stat(s.p("new")).st_size, len(os.pread(fd, 5000, 0))))
    os.truncate(s.p("new"), 3000)
    r.append((os.fstat(fd).st_size, os.pread(fd, 8, 996)))
    os.close(fd)
    fd = os.open(s.p("sparse"), os.O_CREAT | os.O_RDWR, 0o644)  # sparse
    os.pwrite(fd, b"end", 8 * MIB)
    r.append((os.fstat(fd).st_size, os.pread(fd, 4, 4 * MIB), os.lseek(fd, 0, os.SEEK_DATA),
              os.lseek(fd, 0, os.SEEK_HOLE)))
    os.close(fd)
    with open(s.p("small"), "r+b") as f:                     # shared mmap writes reach the file
        mm = mmap.mmap(f.fileno(), 0)
        mm[0:4] = b"MMAP"
        mm.flush()
        mm.close()
    r.append(read(s.p("small")))
    with open(s.p("priv"), "r+b") as f:                      # private mmap writes do not
        mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE)
        mm[0:4] = b"PRIV"
        r.append(mm[0:8])
        mm.close()
    r.append(read(s.p("priv")))
    fd = os.open(s.p("small"), os.O_WRONLY | os.O_APPEND)   # O_APPEND with other writers
    os.write(fd, b"+a")
    other = os.open(s.p("small"), os.O_RDWR)
    os.pwrite(other, b"Z", 0)
    os.close(other)
    os.write(fd, b"+b")
    os.close(fd)
    r.append(read(s.p("small")))
    return r


def build_files(l0):
    write(f"{l0}/big", pattern(4 * MIB, 1))
    write(f"{l0}/small", "0123456789")
    write(f"{l0}/priv", "private!")


def test_data_agrees_with_kernel_overlay(harness, need_passthrough):
    d = Diff(harness, 1, build_files)
    d.run(file_ops)
    d.check()


def test_data_agrees_without_passthrough(harness):
    d = Diff(harness, 1, build_files, vopts=["passthrough=off"])
    d.run(file_ops)
    d.check()


def _stopped_io(harness, opt):
    """Mount with -d; open files; stop the daemon; read (and write) on the open fds."""
    root = harness.mkdir("io")
    for x in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(root, x))
    data = os.urandom(16 * MIB)
    write(f"{root}/l/lower", data)
    m = harness.mount_unionfs([f"{root}/l"], f"{root}/u", f"{root}/w", mnt=f"{root}/m",
                              opts=[f"passthrough={opt}"], args=["-d"])
    low = os.open(f"{m.path}/lower", os.O_RDONLY)
    up = os.open(f"{m.path}/upper", os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(up, pattern(MIB, 5), 0)
    before = requests(m, "READ"), requests(m, "WRITE")
    pid = m.daemon.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        t, out = in_thread(lambda: (os.pread(low, MIB, 9 * MIB), os.pread(up, MIB, 0)),
                           10 if opt == "on" else 2)
        done = not t.is_alive()
    finally:
        os.kill(pid, signal.SIGCONT)
    t.join(30)
    assert not t.is_alive(), "the reads never completed"
    assert out["v"] == (data[9 * MIB:10 * MIB], pattern(MIB, 5)), "wrong data"
    after = requests(m, "READ"), requests(m, "WRITE")
    os.close(low)
    os.close(up)
    return done, before, after


def test_open_files_do_not_need_the_daemon(harness, need_passthrough):
    done, before, after = _stopped_io(harness, "on")
    assert done, "reads on open files waited for the stopped daemon"
    assert before == (0, 0) and after == (0, 0), \
        f"READ/WRITE requests reached the daemon: {before}, {after}"


def test_without_passthrough_reads_need_the_daemon(harness):
    # Counted, not timed: whether the reads finish within a window while the daemon is
    # stopped depends on when SIGSTOP takes hold of every worker (flaky under load); the
    # READ requests in the daemon's log say the data came through the daemon.
    _, before, after = _stopped_io(harness, "off")
    assert before[1] > 0, f"the writes did not reach the daemon: {before}"
    assert after[0] > before[0], f"the reads did not reach the daemon: {before}, {after}"


def _copy_up_while_open(s, follow):
    """A reader holds the lower file (read and mmap) while a writer copies it up."""
    r = []
    ro = os.open(s.p("f"), os.O_RDONLY)
    mm = mmap.mmap(ro, 0, prot=mmap.PROT_READ)
    r.append(os.pread(ro, 10, 0))
    w = os.open(s.p("f"), os.O_RDWR)                 # copy-up while the reader is open
    os.pwrite(w, b"WRITTEN", 0)
    r.append(os.pread(w, 10, 0))
    second = os.open(s.p("f"), os.O_RDONLY)          # a second open after the copy-up
    r.append(os.pread(second, 10, 0))
    r.append(mm[0:10])                               # a mapping made before: the lower data
    held = os.pread(ro, 10, 0)
    if follow:
        r.append(held)
    mm.close()
    os.pwrite(w, b"again", 20)                       # concurrent writer and reader
    r.append(os.pread(second, 30, 0))
    for fd in (ro, w, second):
        os.close(fd)
    fd = os.open(s.p("f"), os.O_RDONLY)              # after every old handle is gone
    mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    r.append((os.pread(fd, 30, 0), mm[0:30]))
    mm.close()
    os.close(fd)
    return r, held


def _lower_f(l0):
    write(f"{l0}/f", "0123456789abcdefghijklmnopqrstuvwxyz")


def test_copy_up_while_lower_file_is_open(harness, need_passthrough):
    d = Diff(harness, 1, _lower_f)
    rk, held_k = _copy_up_while_open(d.k, False)
    rv, held_v = _copy_up_while_open(d.v, False)
    assert rk == rv
    # The kernel's overlayfs moves an old read-only fd to the upper file; a
    # passthrough fd stays on its backing file, the lower one (the man page says so).
    assert held_k == b"WRITTEN789"
    assert held_v == b"0123456789"
    d.check()


def test_copy_up_while_lower_file_is_open_without_passthrough(harness):
    d = Diff(harness, 1, _lower_f, vopts=["passthrough=off"])
    rk, held_k = _copy_up_while_open(d.k, True)
    rv, held_v = _copy_up_while_open(d.v, True)
    # Without passthrough an old fd follows the copy-up as on the kernel; a mapping made
    # before it shows the new data (through the FUSE page cache), not the lower data.
    assert rk[3] == b"0123456789" and rv[3] == b"WRITTEN789"
    del rk[3], rv[3]
    assert rk == rv and held_k == held_v == b"WRITTEN789"
    d.check()


def _attrs(st):
    return (oct(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_nlink)


def _kept_descriptor_changes(s, change):
    """A change through a descriptor opened before the copy-up (another kernel inode
    with passthrough), seen through the path, the other descriptor and by another
    user; and a change through the path seen through the old descriptor."""
    p = s.p("d", change)
    ro = os.open(p, os.O_RDONLY)
    rw = os.open(p, os.O_RDWR)                           # copies up
    r = []
    if change == "chmod":
        os.fchmod(ro, 0o600)                             # 0644 -> 0600: no longer readable
    elif change == "chown":
        os.fchown(ro, 65534, 65534)                      # 0600 root -> the user's own
    elif change == "setfacl":                            # 0644 + u:65534:---
        os.setxattr(ro, "system.posix_acl_access", acl_xattr(
            [(ACL_USER_OBJ, 6, None), (ACL_USER, 0, 65534), (ACL_GROUP_OBJ, 4, None),
             (ACL_MASK, 4, None), (ACL_OTHER, 4, None)]))
    else:
        os.utime(ro, ns=(10**18, 2 * 10**18))
    r += [_attrs(os.stat(p)), _attrs(os.fstat(rw)), _attrs(os.fstat(ro)), read_as(65534, p)]
    os.close(ro)
    os.close(rw)
    r += [_attrs(os.stat(p)), read_as(65534, p)]
    # The other way round: through the path (the new inode), seen by the old descriptor.
    q = s.p("d", "back")
    ro = os.open(q, os.O_RDONLY)
    rw = os.open(q, os.O_RDWR)
    os.fstat(ro)                                         # cached by the old inode
    os.write(rw, b"longer than before")
    os.chmod(q, 0o600)
    os.chown(q, 4321, 4321)
    os.utime(q, ns=(3 * 10**18, 4 * 10**18))
    r += [_attrs(os.fstat(ro)), _attrs(os.stat(q)), read_as(65534, q)]
    os.close(ro)
    os.close(rw)
    return r


@pytest.mark.parametrize("change", ["chmod", "chown", "touch", "setfacl"])
def test_attribute_change_through_a_descriptor_from_before_the_copy_up(harness, need_passthrough,
                                                                       change):
    def build(l0):
        os.makedirs(f"{l0}/d")
        write(f"{l0}/d/chmod", "secret\n", 0o644)
        write(f"{l0}/d/chown", "secret\n", 0o600)
        write(f"{l0}/d/touch", "secret\n", 0o644)
        write(f"{l0}/d/setfacl", "secret\n", 0o644)
        write(f"{l0}/d/back", "back\n", 0o644)

    d = Diff(harness, 1, build)
    r = d.run(lambda s: _kept_descriptor_changes(s, change))
    if change in ("chmod", "setfacl"):
        assert r[3] == r[5] == ("err", errno.EACCES)
    elif change == "chown":
        assert r[3] == r[5] == ("ok", b"secret\n")
    d.check()


def test_readers_and_writers_share_the_file(harness, need_passthrough):
    """Concurrent opens for read and write of an upper and a lower file, several threads."""
    d = Diff(harness, 1, lambda l0: write(f"{l0}/shared", pattern(MIB, 9)))

    def ops(s):
        write(s.p("up"), pattern(MIB, 2))
        out = []
        for name in ("up", "shared"):
            w = os.open(s.p(name), os.O_RDWR)       # (readers of a lower file opened
            fds = [os.open(s.p(name), os.O_RDONLY) for _ in range(3)]  # before: see above)
            ths = [threading.Thread(target=os.pwrite, args=(w, bytes([65 + i]) * 4096,
                                                            i * 8192)) for i in range(4)]
            for t in ths:
                t.start()
            for t in ths:
                t.join()
            out.append([hashlib.sha1(os.pread(fd, 4 * 8192, 0)).hexdigest() for fd in fds])
            for fd in fds + [w]:
                os.close(fd)
        return out

    d.run(ops)
    d.check()


def test_layer_too_deep_to_stack_falls_back(harness, need_passthrough):
    """Backing files on overlayfs need depth 2; on an overlay of an overlay the kernel
    refuses them and the files go through the daemon instead."""
    root = harness.mkdir("stack")
    for x in ("a", "b", "c", "u", "w", "m", "o1", "o2"):
        os.makedirs(os.path.join(root, x))
    data = os.urandom(2 * MIB)
    write(f"{root}/a/deep", data)
    o1 = harness.mount_overlay([f"{root}/a", f"{root}/b"], mnt=f"{root}/o1")   # depth 1
    o2 = harness.mount_overlay([o1.path, f"{root}/c"], mnt=f"{root}/o2")       # depth 2
    m = harness.mount_unionfs([o2.path, o1.path], f"{root}/u", f"{root}/w", mnt=f"{root}/m",
                              args=["-d"])
    assert read(f"{m.path}/deep") == data              # from o2: refused, through the daemon
    assert requests(m, "READ") > 0
    assert "not for files of layer" in m.daemon.output()
    n = requests(m, "READ")
    # The kernel sends RELEASE asynchronously; while the cached read handle is still
    # open the daemon must not ask for passthrough (the kernel would fail the open), so
    # wait for it before the open that should be passthrough again.
    deadline = time.monotonic() + 10
    while requests(m, "RELEASE") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert requests(m, "RELEASE") >= 1
    with open(f"{m.path}/deep", "r+b") as f:            # copied up to ext4: passthrough again
        f.seek(MIB)
        f.write(b"upper")
    assert read(f"{root}/u/deep")[MIB:MIB + 5] == b"upper"
    assert read(f"{m.path}/deep")[MIB - 2:MIB + 7] == data[MIB - 2:MIB] + b"upper" + \
        data[MIB + 5:MIB + 7]
    assert requests(m, "READ") == n and requests(m, "WRITE") == 0
    assert harness.umount(m) == 0


def test_passthrough_on_fails_the_mount_where_the_kernel_refuses(harness, unionfs_bin):
    """Without CAP_SYS_ADMIN in the initial namespace the kernel refuses backing files."""
    root = harness.mkdir("userns")
    for x in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(root, x))
    write(f"{root}/l/f", "x")
    opts = f"lowerdir={root}/l,upperdir={root}/u,workdir={root}/w"
    argv = ["unshare", "-Urm", unionfs_bin, "-f", "-o"]
    r = subprocess.run(argv + [opts + ",passthrough=on", f"{root}/m"], capture_output=True,
                       text=True, timeout=30, env=sanitizer_env())
    assert r.returncode == 1, r.stderr
    assert "passthrough=on" in r.stderr
    # auto mounts anyway, and the files work through the daemon.
    r = subprocess.run(["unshare", "-Urm", "sh", "-c",
                        f'"$0" -o {opts} {root}/m && cat {root}/m/f && umount {root}/m',
                        unionfs_bin], capture_output=True, text=True, timeout=30,
                       env=sanitizer_env())
    assert r.returncode == 0 and r.stdout == "x", r.stderr


# --- A lower file held open must never become a writer's backing file ------------

LOWER_DATA = pattern(64 * 1024, 11)


def _lower_g(l0):
    write(f"{l0}/g", LOWER_DATA)
    write(f"{l0}/other", "untouched")


def lower_digests(s):
    """sha1 of every file in the side's lower layers."""
    out = {}
    for lo in s.lowers:
        for dirpath, _, files in os.walk(lo):
            for n in files:
                p = os.path.join(dirpath, n)
                out[os.path.relpath(p, lo)] = hashlib.sha1(read(p)).hexdigest()
    return out


def _mmap_writer_over_held_lower(s, holders, close_mid):
    """holders read-only fds (and a read-only map) on the lower g; then a writer opens
    it O_RDWR, writes through a MAP_SHARED writable map, msyncs and closes."""
    r = []
    ro = [os.open(s.p("g"), os.O_RDONLY) for _ in range(holders)]
    rmap = mmap.mmap(ro[0], 0, prot=mmap.PROT_READ)
    r.append(rmap[0:8])
    w = os.open(s.p("g"), os.O_RDWR)                 # copy-up while the readers are open
    wmap = mmap.mmap(w, 0)                           # MAP_SHARED, PROT_READ|PROT_WRITE
    wmap[0:7] = b"MAPPED!"
    r.append(os.fstat(ro[0]).st_ino == os.fstat(w).st_ino == os.stat(s.p("g")).st_ino)
    if close_mid:                                     # the readers go in the middle
        rmap.close()
        for fd in ro:
            os.close(fd)
        ro = []
    wmap[4096:4100] = b"more"
    wmap.flush()                                     # msync
    r.append(wmap[0:16])
    wmap.close()
    r.append(os.pread(w, 16, 4090))
    os.close(w)
    again = os.open(s.p("g"), os.O_RDWR)             # a second writer, readers maybe still open
    m2 = mmap.mmap(again, 0)
    m2[100:104] = b"2nd!"
    m2.flush()
    m2.close()
    os.close(again)
    if ro:
        rmap.close()
        for fd in ro:
            os.close(fd)
    r.append(hashlib.sha1(read(s.p("g"))).hexdigest())
    r.append(os.stat(s.p("g")).st_size)
    return r


@pytest.mark.parametrize("holders,close_mid", [(1, False), (3, False), (2, True)])
def test_mmap_writer_never_writes_a_held_lower_file(harness, need_passthrough, holders,
                                                     close_mid):
    d = Diff(harness, 1, _lower_g)
    before = lower_digests(d.v)
    res = d.run(lambda s: _mmap_writer_over_held_lower(s, holders, close_mid))
    assert res[2] == b"MAPPED!" + LOWER_DATA[7:16] and res[1] is True
    assert lower_digests(d.v) == before == lower_digests(d.k), "a lower file was written"
    assert read(f"{d.v.lowers[0]}/g") == LOWER_DATA
    got = read(f"{d.v.upper}/g")
    assert got[0:7] == b"MAPPED!" and got[4096:4100] == b"more" and got[100:104] == b"2nd!"
    d.check()


def test_held_lower_reopened_through_proc_fd(harness, need_passthrough):
    """A /proc/PID/fd reopen takes no path walk: read-only it works (and reads the
    copied-up data, as on the kernel); for writing it fails with ESTALE where the kernel
    overlay succeeds (the man page says so), and never writes the lower file."""
    d = Diff(harness, 1, _lower_g)
    res = {}
    for s in d.sides:
        ro = os.open(s.p("g"), os.O_RDONLY)
        w = os.open(s.p("g"), os.O_RDWR)
        os.pwrite(w, b"UPPER", 0)
        again = os.open(f"/proc/self/fd/{ro}", os.O_RDONLY)
        res[s.name] = [os.pread(again, 8, 0), errno_of(os.open, f"/proc/self/fd/{ro}",
                                                       os.O_RDWR)]
        for fd in (again, w, ro):
            os.close(fd)
    assert res["k"] == [b"UPPER" + LOWER_DATA[5:8], 0]
    assert res["v"] == [b"UPPER" + LOWER_DATA[5:8], errno.ESTALE]
    assert read(f"{d.v.lowers[0]}/g") == LOWER_DATA
    d.check()


def test_old_nodes_are_forgotten_and_freed(harness, need_passthrough):
    """Nodes taken off their names get their FORGETs once their files are closed and are
    freed: after 200 such copy-ups the daemon holds one node per name, not two."""
    n = 200

    def build(l0):
        for i in range(n):
            write(f"{l0}/f{i}", pattern(4096, i))

    def ops(s):
        for i in range(n):
            ro = os.open(s.p(f"f{i}"), os.O_RDONLY)
            w = os.open(s.p(f"f{i}"), os.O_RDWR)
            m = mmap.mmap(w, 0)
            m[0:4] = b"%04d" % i
            m.close()
            os.close(w)
            os.close(ro)
        return [read(s.p(f"f{i}"))[:6] for i in range(0, n, 37)]

    d = Diff(harness, 1, build)
    d.run(ops)
    for _ in range(300):
        if node_stats(d.v.p())["nodes"] <= n:
            break
        time.sleep(0.05)
    assert node_stats(d.v.p())["nodes"] <= n, node_stats(d.v.p())
    assert read(f"{d.v.lowers[0]}/f5") == pattern(4096, 5)
    d.check()


def _daemon_fds_of(pid, st):
    """The daemon's fds (as /proc/PID/fd paths) on the object st describes."""
    out = []
    for n in os.listdir(f"/proc/{pid}/fd"):
        p = f"/proc/{pid}/fd/{n}"
        try:
            s = os.stat(p)
        except OSError:
            continue
        if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
            out.append(p)
    return out


def test_lower_layers_are_read_only_to_the_daemon(harness):
    """The daemon reaches lowers through a read-only clone of their mount: its own fds of a
    lower file and of a lower directory cannot be reopened for writing (EROFS), while the
    upper can, and writes through the union still copy up."""
    root = harness.mkdir("ro")
    for x in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(root, x))
    write(f"{root}/l/g", LOWER_DATA)
    m = harness.mount_unionfs([f"{root}/l"], f"{root}/u", f"{root}/w", mnt=f"{root}/m")
    pid = m.daemon.proc.pid
    held = os.open(f"{m.path}/g", os.O_RDONLY)       # the daemon opens g for this handle
    try:
        files = _daemon_fds_of(pid, os.stat(f"{root}/l/g"))
        dirs = _daemon_fds_of(pid, os.stat(f"{root}/l"))
        uppers = _daemon_fds_of(pid, os.stat(f"{root}/u"))
        assert files and dirs and uppers, (files, dirs, uppers)
        assert {errno_of(os.open, p, os.O_RDWR) for p in files} == {errno.EROFS}
        assert {errno_of(os.open, f"{p}/new", os.O_CREAT | os.O_WRONLY, 0o644)
                for p in dirs} == {errno.EROFS}
        assert errno_of(os.open, f"{uppers[0]}/new", os.O_CREAT | os.O_WRONLY, 0o644) == 0
        os.unlink(f"{root}/u/new")
        with open(f"{m.path}/g", "r+b") as f:
            f.write(b"W")
        assert read(f"{root}/u/g")[:2] == b"W" + LOWER_DATA[1:2]
    finally:
        os.close(held)
    assert read(f"{root}/l/g") == LOWER_DATA


# --- Writes by an unprivileged user clear set-ID bits and file capabilities -------

CAP_NET_RAW_EP = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # vfs_cap_data v2
PRIV_MODES = {"suid": 0o6777, "sgid": 0o2777, "sgid_nox": 0o2767, "cap": 0o777, "tr": 0o6777,
              "late": 0o777}
NOBODY = 65534


def _priv_files(l0):
    os.chmod(l0, 0o755)
    for n, mode in PRIV_MODES.items():
        write(f"{l0}/{n}", "data", mode)
    os.setxattr(f"{l0}/cap", "security.capability", CAP_NET_RAW_EP)


def _set_privs(s):
    for n, mode in PRIV_MODES.items():
        os.chmod(s.p(n), mode)
    os.setxattr(s.p("cap"), "security.capability", CAP_NET_RAW_EP)


def _unprivileged_writes(dirfd, go_r, ready_w):
    for n in ("suid", "sgid", "sgid_nox", "cap"):
        fd = os.open(n, os.O_WRONLY | os.O_APPEND, dir_fd=dirfd)
        os.write(fd, b"+w")
        os.close(fd)
    fd = os.open("tr", os.O_WRONLY, dir_fd=dirfd)
    os.ftruncate(fd, 2)
    os.close(fd)
    late = os.open("late", os.O_WRONLY, dir_fd=dirfd)   # open, then root sets the bits
    os.write(ready_w, b"1")
    os.read(go_r, 1)
    os.pwrite(late, b"L", 0)
    os.close(late)


def _privs_after_writes(s):
    out = []
    dirfd = os.open(s.p(), os.O_PATH | os.O_DIRECTORY)
    try:
        for _ in range(2):           # on the lower files, then on their upper copies
            go_r, go_w = os.pipe()
            ready_r, ready_w = os.pipe()
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.setgroups([])
                    os.setresgid(NOBODY, NOBODY, NOBODY)
                    os.setresuid(NOBODY, NOBODY, NOBODY)
                    _unprivileged_writes(dirfd, go_r, ready_w)
                    code = 0
                finally:
                    os._exit(code)
            assert os.read(ready_r, 1) == b"1"
            os.chmod(s.p("late"), 0o6777)
            os.write(go_w, b"1")
            assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
            for fd in (go_r, go_w, ready_r, ready_w):
                os.close(fd)
            out.append({n: (oct(os.stat(s.p(n)).st_mode & 0o7777), os.stat(s.p(n)).st_size,
                            errno_of(os.getxattr, s.p(n), "security.capability"))
                        for n in PRIV_MODES})
            _set_privs(s)
            os.chmod(s.p("late"), 0o777)
    finally:
        os.close(dirfd)
    return out


@pytest.mark.parametrize("pt", ["auto", "off"])
def test_unprivileged_write_clears_set_id_bits_and_capabilities(harness, need_passthrough, pt):
    """A passthrough write runs with the daemon's root credentials on the backing file;
    the set-ID bits and security.capability must still go as on the kernel overlay: on
    write, on truncate, on a file opened before the bits were set, on lower files (the
    write copies up) and on upper ones."""
    d = Diff(harness, 1, _priv_files, vopts=[f"passthrough={pt}"])
    rk = _privs_after_writes(d.k)
    rv = _privs_after_writes(d.v)
    for rnd in rk:                   # the oracle did clear them (else the test shows nothing)
        assert rnd["suid"][0] == rnd["tr"][0] == rnd["late"][0] == rnd["sgid"][0] == "0o777"
        assert rnd["cap"][2] == errno.ENODATA and rnd["tr"][1] == 2
    # Known difference (the man page's DIFFERENCES, with or without passthrough): FUSE
    # (fs/fuse/dir.c fuse_setattr) kills S_ISGID on write only with group-execute, while
    # the kernel overlay also drops it from a 02767 file written by a non-member.
    assert [r["sgid_nox"][0] for r in rk] == ["0o767"] * 2
    assert [r["sgid_nox"][0] for r in rv] == ["0o2767"] * 2
    for r in rk + rv:
        del r["sgid_nox"]
    assert rk == rv
    os.chmod(d.v.p("sgid_nox"), 0o767)
    os.chmod(d.k.p("sgid_nox"), 0o767)
    d.check()


def test_estale_only_when_a_lower_backing_is_held(harness, need_passthrough):
    """A plain copy-up (nobody holds the lower file) keeps the one-open fast path; with a
    reader holding it, the writer's open costs one ESTALE and one extra LOOKUP pair."""
    root = harness.mkdir("estale")
    for x in ("l", "u", "w", "m"):
        os.makedirs(os.path.join(root, x))
    write(f"{root}/l/plain", LOWER_DATA)
    write(f"{root}/l/held", LOWER_DATA)
    m = harness.mount_unionfs([f"{root}/l"], f"{root}/u", f"{root}/w", mnt=f"{root}/m",
                              args=["-d"])

    def stale():
        return m.daemon.output().count("error: -116 ")

    os.stat(f"{m.path}/plain")
    os.stat(f"{m.path}/held")
    opens = requests(m, "OPEN")
    with open(f"{m.path}/plain", "r+b") as f:
        f.write(b"P")
    assert stale() == 0 and requests(m, "OPEN") == opens + 1
    with open(f"{m.path}/held", "rb") as r:
        opens = requests(m, "OPEN")
        with open(f"{m.path}/held", "r+b") as f:
            f.write(b"H")
        assert stale() == 1 and requests(m, "OPEN") == opens + 2
        assert r.read(2) == LOWER_DATA[:2]
    assert read(f"{root}/u/plain")[:2] == b"P" + LOWER_DATA[1:2]
    assert read(f"{root}/u/held")[:2] == b"H" + LOWER_DATA[1:2]
    assert read(f"{root}/l/held") == LOWER_DATA
