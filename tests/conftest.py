# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared pytest harness for veneer's integration suites.

Every test gets a fresh temporary tree; every mount and daemon it starts is
registered here and torn down even when the test fails. A missing
prerequisite (no /dev/fuse, not root, no kernel overlay) skips on a user's
machine but fails in CI (CI=true or VENEER_STRICT=1).
"""
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from veneer_harness import (  # noqa: E402
    Harness,
    build_path,
    require,
)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true",
                     help="the soak's long run (900 s instead of 60; VENEER_SOAK_SECONDS overrides)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running scenario")
    # A base temp dir of this session's own. Tests that let other uids reach their mounts
    # open the search bits of their tmp dir's ancestors; in the shared /tmp/pytest-of-root
    # every other pytest session (another checkout's suite) resets them to 0700 when it
    # starts, which made those tests fail at random when two suites ran at once.
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        config.option.basetemp = tempfile.mkdtemp(prefix="veneer-pytest-")
        config._veneer_basetemp = config.option.basetemp


def pytest_unconfigure(config):
    base = getattr(config, "_veneer_basetemp", None)
    if base is None:
        return
    # Keep the trees of a failed run for a look; a passed run leaves nothing.
    if getattr(config, "_veneer_failed", False):
        print(f"\nveneer: the failed run's test trees are kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def pytest_sessionfinish(session, exitstatus):
    session.config._veneer_failed = exitstatus != 0


@pytest.fixture
def harness(tmp_path):
    """A Harness that owns mounts, daemons and cgroups of one test."""
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()


@pytest.fixture
def unionfs_bin():
    path = build_path("unionfs/veneer-unionfs")
    require(os.access(path, os.X_OK), f"{path} is not built")
    return path


@pytest.fixture
def procfs_bin():
    path = build_path("procfs/veneer-procfs")
    require(os.access(path, os.X_OK), f"{path} is not built")
    return path


@pytest.fixture
def run_bin():
    path = build_path("launcher/veneer-run")
    require(os.access(path, os.X_OK), f"{path} is not built")
    return path


@pytest.fixture
def need_fuse():
    require(os.path.exists("/dev/fuse"), "no /dev/fuse")
    require(os.geteuid() == 0, "needs root")


@pytest.fixture
def need_overlay():
    require(os.geteuid() == 0, "needs root")
    with open("/proc/filesystems") as f:
        require(any(line.split()[-1] == "overlay" for line in f if line.strip()),
                "the kernel has no overlay filesystem")


@pytest.fixture(scope="session")
def deb():
    """The Debian package of the working tree (deb_util: built once per test run)."""
    from deb_util import build_deb
    return build_deb()
