# SPDX-License-Identifier: GPL-2.0-or-later
"""userns_exec.py OUTER COUNT ARGV...: run ARGV as uid/gid 0 of a new user namespace
in which ids 0..COUNT-1 are OUTER..OUTER+COUNT-1 outside, with a private mount
namespace of its own (mounts made there are owned by that user namespace).

Run as root; unlike `unshare --map-users` it needs no newuidmap. Exits with ARGV's
exit status.
"""
import ctypes
import os
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def main():
    outer, count, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
            os.write(2, f"unshare: {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(125)
        os.write(ready_w, b"1")
        if os.read(go_r, 1) != b"1":
            os._exit(125)
        if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            os.write(2, f"mount: {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(125)
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        os.setgroups([])
        os.execvp(argv[0], argv)
    os.close(ready_w)
    os.close(go_r)
    ok = os.read(ready_r, 1) == b"1"
    if ok:
        for f in ("uid_map", "gid_map"):
            with open(f"/proc/{pid}/{f}", "w") as fh:
                fh.write(f"0 {outer} {count}\n")
        os.write(go_w, b"1")
    os.close(go_w)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
