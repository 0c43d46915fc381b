# SPDX-License-Identifier: GPL-2.0-or-later
"""Escape attempts, run inside a veneer-run container by test_run_security.py.

`python3 escape_probes.py NAME [ARG...]` makes one attempt with the raw system
calls (ctypes: no tool that might do something else first) and prints one line:
"OK <detail>" when it worked, "ERR <ERRNO-NAME>" when a call failed. Nothing here
changes the host when it works: sysctls written are namespaced, module loading gets a
non-module, reboot(2) a command that is only checked, keys live in a process keyring.
"""
import ctypes
import errno
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

SYS = {"keyctl": 250, "bpf": 321, "init_module": 175, "open_by_handle_at": 304,
       "name_to_handle_at": 303}
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000
PTRACE_ATTACH, PTRACE_DETACH = 16, 17


class Fail(Exception):
    pass


def check(ret):
    if ret < 0:
        raise Fail(errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())))
    return ret


def os_call(fn, *args):
    try:
        return fn(*args)
    except OSError as e:
        raise Fail(errno.errorcode.get(e.errno, str(e.errno)))


def mount(src, target, fstype, flags=0, data=None):
    check(libc.mount(src.encode() if src else None, target.encode(),
                     fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                     data.encode() if data else None))


def probe_mknod_open(kind, major, minor, path="/tmp/escape-dev"):
    """mknod a device node, then open it (a block device: and read from it)."""
    mode = (0o060000 if kind == "b" else 0o020000) | 0o600
    if os.path.lexists(path):
        os.unlink(path)
    os_call(os.mknod, path, mode, os.makedev(int(major), int(minor)))
    return probe_read(path) if kind == "b" else probe_open(path)


def probe_open(path):
    fd = os_call(os.open, path, os.O_RDONLY | os.O_NONBLOCK)
    os.close(fd)
    return "opened"


def probe_mount_dev(dev, fstype="ext4", target="/tmp/escape-mnt"):
    """Mount a block device read-only and list it."""
    os.makedirs(target, exist_ok=True)
    mount(dev, target, fstype, MS_RDONLY)
    return " ".join(sorted(os.listdir(target)))


def probe_remount_procsys():
    mount(None, "/proc/sys", None, MS_REMOUNT | MS_BIND)
    return "remounted"


def probe_write_sysctl(path="/proc/sys/kernel/domainname", value="escaped"):
    fd = os_call(os.open, path, os.O_WRONLY)
    os.write(fd, value.encode())
    os.close(fd)
    return "written"


def probe_sysrq():
    """Open sysrq-trigger for writing; write nothing (0 bytes trigger nothing)."""
    fd = os_call(os.open, "/proc/sysrq-trigger", os.O_WRONLY)
    os.write(fd, b"")
    os.close(fd)
    return "opened"


def probe_umount(path):
    check(libc.umount2(path.encode(), 0))
    with open("/proc/meminfo") as f:
        return f.readline().strip()


def probe_mount_cgroup(raise_to):
    """Mount the memory hierarchy, then raise our own cgroup's limit."""
    target = "/tmp/escape-cg"
    os.makedirs(target, exist_ok=True)
    mount("cgroup", target, "cgroup", 0, "memory")
    with open("/proc/self/cgroup") as f:
        path = [line.split(":", 2)[2].strip() for line in f if ":memory:" in line][0]
    with open(os.path.join(target, path.lstrip("/"), "memory.limit_in_bytes"), "w") as f:
        f.write(raise_to)
    return "raised"


def probe_kmsg():
    """Open /proc/kmsg; never read it (that would take the messages from the host)."""
    fd = os_call(os.open, "/proc/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    os.close(fd)
    return "opened"


def probe_init_module():
    image = b"\0" * 64  # not an ELF module: permission is checked first
    check(libc.syscall(SYS["init_module"], image, len(image), b""))
    return "loaded?"


def probe_reboot():
    """LINUX_REBOOT_CMD_CAD_OFF: in a pid namespace only permission is checked (then EINVAL)."""
    check(libc.reboot(0))
    return "done"


def probe_keyctl():
    """KEYCTL_GET_KEYRING_ID of KEY_SPEC_PROCESS_KEYRING, created: dies with us."""
    return f"keyring {check(libc.syscall(SYS['keyctl'], 0, -2, 1))}"


def probe_bpf():
    """BPF_MAP_CREATE of a one-entry array map."""
    attr = struct.pack("IIII", 2, 4, 4, 1) + b"\0" * 112
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = check(libc.syscall(SYS["bpf"], 0, buf, len(attr)))
    os.close(fd)
    return "map created"


def probe_unshare_mount():
    """A new user and mount namespace, where we are root, and a mount there."""
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS))
    os.makedirs("/tmp/escape-userns", exist_ok=True)
    mount("none", "/tmp/escape-userns", "tmpfs")
    return "mounted in a user namespace"


class FileHandle(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]


def probe_open_by_handle(htype, hexdata, mount_dir):
    """Shocker: a handle of the host's root inode, opened through any fd on that fs."""
    data = bytes.fromhex(hexdata)
    fh = FileHandle(len(data), int(htype))
    ctypes.memmove(fh.f_handle, data, len(data))
    mfd = os.open(mount_dir, os.O_RDONLY | os.O_DIRECTORY)
    fd = check(libc.syscall(SYS["open_by_handle_at"], mfd, ctypes.byref(fh),
                            os.O_RDONLY | os.O_DIRECTORY))
    return " ".join(sorted(os.listdir(fd)))


def handle_of(path):
    """(type, hex) of path's file handle: run on the host."""
    fh = FileHandle(128, 0)
    mid = ctypes.c_int()
    check(libc.syscall(SYS["name_to_handle_at"], -100, path.encode(), ctypes.byref(fh),
                       ctypes.byref(mid), 0))
    return fh.handle_type, bytes(fh.f_handle[:fh.handle_bytes]).hex()


def probe_ptrace(pid):
    pid = int(pid)
    check(libc.ptrace(PTRACE_ATTACH, pid, None, None))
    os.waitpid(pid, os.__dict__.get("WALL", 0x40000000))
    check(libc.ptrace(PTRACE_DETACH, pid, None, None))
    return "attached"


def probe_kill0(pid):
    os_call(os.kill, int(pid), 0)
    return "exists"


def probe_proc(pid, what):
    """Reach into another process through /proc: fd, root, mem, environ."""
    p = f"/proc/{pid}/{what}"
    if what == "fd":  # the numbers are listed to root; where they lead is what counts
        fds = sorted(os_call(os.listdir, p), key=int)
        for fd in fds:
            os_call(os.readlink, f"{p}/{fd}")
        return " ".join(fds)
    if what == "root":
        return " ".join(sorted(os_call(os.listdir, p))[:3])
    fd = os_call(os.open, p, os.O_RDONLY)
    os.close(fd)
    return "opened"


def probe_read(path, size=16):
    fd = os_call(os.open, path, os.O_RDONLY)
    data = os.read(fd, int(size))
    os.close(fd)
    return f"read {len(data)}"


def main():
    name, args = sys.argv[1], sys.argv[2:]
    try:
        print("OK", globals()["probe_" + name](*args))
    except Fail as e:
        print("ERR", e.args[0])
    except OSError as e:
        print("ERR", errno.errorcode.get(e.errno, str(e.errno)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
