# SPDX-License-Identifier: GPL-2.0-or-later
"""The Debian package of the working tree, built by scripts/build-deb once per test run.

scripts/test gives both of its pytest runs (build/ and build-asan/) one VENEER_RUN_ID: the
second takes the .deb the first built from the very same files (keyed by their hash). A
pytest run without one builds its own.
"""
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import tempfile

from veneer_harness import REPO, require

CACHE = "/var/tmp/veneer-deb"


def meson_version():
    r = subprocess.run(["meson", "introspect", "--projectinfo",
                        os.path.join(REPO, "meson.build")],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout)["version"]


def source_hash():
    """What scripts/build-deb packs: tracked and new files, by name and content."""
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       cwd=REPO, capture_output=True, check=True)
    h = hashlib.sha256()
    for name in sorted(set(r.stdout.decode().split("\0")) - {""}):
        path = os.path.join(REPO, name)
        h.update(name.encode() + b"\0")
        if os.path.islink(path):
            h.update(os.readlink(path).encode())
        elif os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _debs(d):
    return [p for p in glob.glob(os.path.join(d, "veneer_*.deb"))]


def build_deb():
    """Path of the .deb (see the module's doc)."""
    for tool in ("dpkg-buildpackage", "dh", "meson"):
        require(shutil.which(tool) is not None, f"{tool} is not installed (scripts/bootstrap)")
    run_id = os.environ.get("VENEER_RUN_ID")
    if not run_id:
        out = tempfile.mkdtemp(prefix="veneer-deb-", dir="/var/tmp")
        return _build(out)
    os.makedirs(CACHE, exist_ok=True)
    out = os.path.join(CACHE, f"{run_id}-{source_hash()}")
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _debs(out):
            # Earlier runs' packages go.
            for old in glob.glob(os.path.join(CACHE, "*")):
                shutil.rmtree(old, ignore_errors=True)
            _build(out + ".tmp")
            os.rename(out + ".tmp", out)
        return _debs(out)[0]


def _build(out):
    shutil.rmtree(out, ignore_errors=True)
    r = subprocess.run([os.path.join(REPO, "scripts", "build-deb"), out], capture_output=True,
                       text=True, timeout=1800)
    assert r.returncode == 0, f"scripts/build-deb failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    debs = _debs(out)
    assert len(debs) == 1 and r.stdout.strip().splitlines()[-1] == debs[0], (r.stdout, debs)
    return debs[0]
