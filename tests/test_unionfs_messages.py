# SPDX-License-Identifier: GPL-2.0-or-later
"""Where veneer-unionfs's messages go, and the message of a mount that cannot be made.

A detached daemon logs to syslog; where no syslog socket listens (this machine, most
containers) its messages used to be lost: they now go to $XDG_RUNTIME_DIR/veneer/IDENT.log.
A user namespace without a mount namespace of its own used to get "Input/output error":
the message now names the cause and the fix (unshare -Urm), and the fix is shown to work.
"""
import os
import subprocess

from veneer_harness import sanitizer_env


def _lower(harness):
    low = harness.mkdir("l")
    with open(os.path.join(low, "hello"), "w") as f:
        f.write("hi\n")
    return low


def test_detached_daemon_logs_to_runtime_file_without_syslog(harness, unionfs_bin, need_fuse):
    """Background mount, no syslog socket (hidden in a private mount namespace if the machine
    has one): the daemon's message at its end is in the fallback file; a foreground daemon
    logs to stderr and writes no file."""
    low = _lower(harness)
    mnt = harness.mkdir("mnt")
    rt = harness.mkdir("runtime")
    env = sanitizer_env()
    env["XDG_RUNTIME_DIR"] = rt
    script = f"""
set -e
if [ -e /dev/log ]; then mount --bind /dev/null /dev/log; fi
{unionfs_bin} -o lowerdir={low} {mnt}
mountpoint -q {mnt}
cat {mnt}/hello
pid=$(pgrep -f -x '{unionfs_bin} -o lowerdir={low} {mnt}')
kill -TERM $pid
while kill -0 $pid 2>/dev/null; do sleep 0.05; done
"""
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert r.stderr == ""  # nothing on the terminal after a good start
    log = os.path.join(rt, "veneer", "veneer-unionfs.log")
    assert oct(os.stat(os.path.dirname(log)).st_mode & 0o777) == oct(0o700)
    assert oct(os.stat(log).st_mode & 0o777) == oct(0o600)
    with open(log) as f:
        text = f.read()
    assert f"veneer-unionfs[" in text and f"'{mnt}': ending on signal 15 (Terminated)" in text
    # In the foreground: stderr, and no file.
    os.unlink(log)
    m = harness.mount_unionfs([low], mnt=harness.path("fg"), env=env)
    m.daemon.stop()
    assert "ending on signal" not in m.daemon.output()
    assert not os.path.exists(log)


def test_mount_without_mount_namespace_names_the_fix(harness, unionfs_bin, need_fuse):
    """In a user namespace that does not own its mount namespace the mount fails with a
    message naming the cause and 'unshare -Urm', not "Input/output error"; with the fix
    the same command mounts."""
    low = _lower(harness)
    mnt = harness.mkdir("mnt")
    r = subprocess.run(["unshare", "-Ur", unionfs_bin, "-f", "-o", f"lowerdir={low}", mnt],
                       capture_output=True, text=True, env=sanitizer_env(), timeout=60)
    assert r.returncode != 0
    assert "Input/output error" not in r.stderr
    assert "does not own its mount namespace" in r.stderr
    assert "unshare -Urm veneer-unionfs" in r.stderr
    assert not os.path.ismount(mnt)
    fixed = f"{unionfs_bin} -o lowerdir={low} {mnt} && cat {mnt}/hello && umount {mnt}"
    r = subprocess.run(["unshare", "-Urm", "sh", "-c", fixed], capture_output=True, text=True,
                       env=sanitizer_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
