# SPDX-License-Identifier: GPL-2.0-or-later
"""The harness itself: prerequisites, the oracle mount and clean teardown."""
import os
import subprocess

from veneer_harness import Harness, mounted_at, mounts_below, snapshot


def test_oracle_overlay_mount_and_teardown(tmp_path, need_overlay):
    h = Harness(tmp_path)
    lower = h.mkdir("lower")
    upper = h.mkdir("upper")
    work = h.mkdir("work")
    with open(os.path.join(lower, "a"), "w") as f:
        f.write("lower")
    m = h.mount_overlay([lower], upper, work)
    assert mounted_at(m.path)
    with open(os.path.join(m.path, "a"), "a") as f:
        f.write("+upper")
    assert snapshot(m.path)["a"][5] == snapshot(upper)["a"][5]
    h.cleanup()
    assert mounts_below(str(tmp_path)) == []
    with open(os.path.join(lower, "a")) as f:
        assert f.read() == "lower"


def test_cleanup_runs_after_failure(tmp_path, need_overlay):
    h = Harness(tmp_path)
    lower = h.mkdir("lower")
    m = h.mount_overlay([lower, h.mkdir("lower2")])
    try:
        raise RuntimeError("a failing test")
    except RuntimeError:
        pass
    finally:
        h.cleanup()
    assert not mounted_at(m.path)


def test_cgroup_fixture_removes_cgroup(tmp_path, need_fuse):
    h = Harness(tmp_path)
    name, paths = h.cgroup_v1(["memory", "pids"], settings={("pids", "pids.max"): 10})
    proc = subprocess.Popen(["sleep", "60"])
    with open(os.path.join(paths["memory"], "cgroup.procs"), "w") as f:
        f.write(str(proc.pid))
    h.cleanup()
    proc.wait(5)
    assert not os.path.exists(paths["memory"])
    assert not os.path.exists(paths["pids"])


def test_strict_mode_turns_skip_into_failure():
    env = dict(os.environ, CI="true")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from veneer_harness import require\n"
            "require(False, 'missing thing')\n") % os.path.dirname(__file__)
    r = subprocess.run(["/usr/bin/python3", "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "missing prerequisite" in r.stderr
