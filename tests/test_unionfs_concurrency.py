# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs under concurrent use: many threads create, rename, unlink,
list and copy up at once (the node table, fd cache and copy-up locking are
exercised, and the ASan build watches). What is left must read back the same
after a remount, and the upper must mount under kernel overlay with the same tree."""
import os
import random
import threading

import pytest

from unionfs_diff import read, write
from veneer_harness import snapshot


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


@pytest.mark.parametrize("ndirs", [40, 3])
def test_concurrent_mixed_operations(harness, ndirs):
    """40 dirs: broad coverage; 3 dirs: every thread fights over the same few names."""
    lower = harness.mkdir("lower")
    for i in range(40):
        os.makedirs(f"{lower}/shared/d{i}")
        for j in range(10):
            write(f"{lower}/shared/d{i}/f{j}", f"{i}/{j}")
    upper, work = harness.mkdir("upper"), harness.mkdir("work")
    m = harness.mount_unionfs([lower], upper, work, opts=("fd_cache=64",))
    root = m.path
    errors = []

    def worker(n):
        rnd = random.Random(n)
        try:
            for it in range(300):
                i, j = rnd.randrange(ndirs), rnd.randrange(10)
                p = f"{root}/shared/d{i}/f{j}"
                op = rnd.randrange(7)
                try:
                    if op == 0:
                        with open(p, "a") as f:
                            f.write(f"w{n}")
                    elif op == 1:
                        os.rename(p, f"{root}/shared/d{i}/t{n}-{it}")
                    elif op == 2:
                        os.unlink(p)
                    elif op == 3:
                        os.listdir(f"{root}/shared/d{i}")
                    elif op == 4:
                        os.chmod(p, 0o600 + rnd.randrange(8))
                    elif op == 5:
                        write(f"{root}/shared/d{i}/n{n}-{it}", "new")
                    else:
                        read(p)
                except FileNotFoundError:
                    pass
                except FileExistsError:
                    # Lost a race with the unlink or rename of f{j}: the copy-up of a
                    # file no longer at its name fails as the kernel's does (EEXIST).
                    if op not in (0, 4):
                        raise
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert m.daemon.alive()
    before = snapshot(root)
    assert harness.umount(m) == 0
    m2 = harness.mount_unionfs([lower], upper, work, mnt=harness.path("merged2"))
    assert snapshot(m2.path) == before
    assert harness.umount(m2) == 0
    k = harness.mount_overlay([lower], upper, work)
    after = snapshot(k.path)
    assert {p: e[:7] for p, e in after.items()} == {p: e[:7] for p, e in before.items()}
