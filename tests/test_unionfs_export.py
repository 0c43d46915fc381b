# SPDX-License-Identifier: GPL-2.0-or-later
"""veneer-unionfs --export-layer: an upper directory as an OCI layer tar.

An upper is built through a real veneer mount over a busybox root filesystem (files
created, a lower file and a lower directory deleted, an opaque directory, chmod, a
hard link, an xattr); its export is stacked on the lower's tar in an OCI image layout,
which podman pulls and runs: the tree the container sees is the merged view. tar -tvf
shows the whiteouts and the opaque marker; metacopy files need -o lowerdir=.
"""
import hashlib
import json
import os
import shutil
import stat
import tarfile
import subprocess

import pytest

from podman_util import ULIMITS, Podman
from unionfs_diff import write
from veneer_harness import REPO, build_path, require


@pytest.fixture(autouse=True)
def _prereqs(need_fuse, need_overlay, unionfs_bin):
    pass


def _export(*args, check=True):
    r = subprocess.run([build_path("unionfs/veneer-unionfs"), "--export-layer", *args],
                       capture_output=True)
    if check:
        assert r.returncode == 0, r.stderr.decode()
    return r


def _lower(h, lower):
    os.makedirs(f"{lower}/t/keep")
    os.makedirs(f"{lower}/t/gone/deep")
    os.makedirs(f"{lower}/t/opq")
    write(f"{lower}/t/keep/a", "a")
    write(f"{lower}/t/gone/deep/b", "b")
    write(f"{lower}/t/opq/c", "c")
    write(f"{lower}/t/delme", "x")
    write(f"{lower}/t/modme", "m")


def _change(m):
    t = f"{m}/t"
    os.unlink(f"{t}/delme")
    shutil.rmtree(f"{t}/gone")
    shutil.rmtree(f"{t}/opq")
    os.mkdir(f"{t}/opq")
    write(f"{t}/opq/n", "new")
    os.chmod(f"{t}/modme", 0o604)
    write(f"{t}/newf", "f" * 5000)
    os.link(f"{t}/newf", f"{t}/newf2")
    os.setxattr(f"{t}/newf", "user.note", b"kept")
    os.symlink("keep/a", f"{t}/sl")


def _view(root):
    """name -> (mode, size or link target) under root/t."""
    out = {}
    for dirpath, dirs, files in os.walk(f"{root}/t"):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            extra = os.readlink(p) if os.path.islink(p) else (0 if os.path.isdir(p) else
                                                               st.st_size)
            out["/" + os.path.relpath(p, root)] = (oct(st.st_mode), extra)
    return out


def _oci_layout(h, layers):
    """An OCI image layout with these layer tars, bottom first."""
    d = h.mkdir("oci")
    blobs = h.mkdir("oci", "blobs", "sha256")

    def blob(data):
        dg = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, dg), "wb") as f:
            f.write(data)
        return {"digest": "sha256:" + dg, "size": len(data)}

    descs = []
    for t in layers:
        with open(t, "rb") as f:
            descs.append(blob(f.read()))
    config = blob(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in descs]}}).encode())
    manifest = blob(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(x, mediaType="application/vnd.oci.image.layer.v1.tar")
                   for x in descs]}).encode())
    with open(f"{d}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [
            dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
                 annotations={"org.opencontainers.image.ref.name": "exported"})]}, f)
    with open(f"{d}/oci-layout", "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return d


def test_exported_layer_runs_as_the_merged_view(harness):
    h = harness
    require(shutil.which("podman") is not None, "podman is not installed")
    base_tar = h.path("busybox.tar")
    subprocess.run([os.path.join(REPO, "tests", "fixtures", "busybox-rootfs.sh"), base_tar],
                   check=True, capture_output=True)
    lower = h.mkdir("lower")
    subprocess.run(["tar", "-xf", base_tar, "-C", lower], check=True)
    _lower(h, lower)
    lower_tar = h.path("lower.tar")
    subprocess.run(["tar", "--numeric-owner", "-cf", lower_tar, "-C", lower, "."], check=True)
    u, w = h.mkdir("u"), h.mkdir("w")
    m = h.mount_unionfs([lower], u, w)
    _change(m.path)
    merged = _view(m.path)
    h.umount(m)

    out = h.path("layer.tar")
    _export(u, "--output", out)
    listing = subprocess.run(["tar", "-tvf", out], capture_output=True, text=True,
                             check=True).stdout
    names = [line.split()[-1] if " -> " not in line and " link to " not in line
             else line.split()[5] for line in listing.splitlines()]
    for n in ("t/.wh.delme", "t/.wh.gone", "t/opq/", "t/opq/.wh..wh..opq", "t/opq/n",
              "t/modme", "t/newf", "t/newf2", "t/sl"):
        assert n in names, (n, listing)
    assert "link to t/newf" in listing
    assert not any("overlay" in x for x in subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "-tvvf", out], capture_output=True,
        text=True).stdout.splitlines() if "xattr" in x)
    pax = subprocess.run(["python3", "-c", "import tarfile,sys,json;"
                          "print(json.dumps({m.name: m.pax_headers for m in "
                          "tarfile.open(sys.argv[1])}))", out],
                         capture_output=True, text=True, check=True).stdout
    pax = json.loads(pax)
    assert pax["t/newf"].get("SCHILY.xattr.user.note") == "kept"
    assert not [k for v in pax.values() for k in v if "overlay" in k]

    pm = Podman(h)
    layout = _oci_layout(h, [lower_tar, out])
    # podman names the pulled image after the layout's path, and a pytest temp dir such as
    # veneer-pytest-3ichlhb_ is not a valid reference component: pull from a fixed name.
    safe = f"/tmp/veneer-oci-{os.getpid()}"
    shutil.rmtree(safe, ignore_errors=True)
    os.rename(layout, safe)
    try:
        img = pm("pull", "-q", f"oci:{safe}").stdout.split()[-1]
    finally:
        os.rename(safe, layout)
    r = pm("run", "--rm", *ULIMITS, "--network=none", img, "find", "/t", "-exec",
           "stat", "-c", "%n %f %s %N", "{}", "+")
    seen = {}
    for line in r.stdout.splitlines():
        name, mode, size, *rest = line.split(" ", 3)
        if name == "/t":
            continue
        mode = int(mode, 16)
        if os.path.stat.S_ISLNK(mode):
            extra = rest[0].split(" -> ")[1].strip("'")
        else:
            extra = 0 if os.path.stat.S_ISDIR(mode) else int(size)
        seen[name] = (oct(mode), extra)
    assert seen == merged


def test_metacopy_needs_the_lowers(harness):
    h = harness
    lower = h.mkdir("lower")
    write(f"{lower}/big", "data" * 1000)
    u, w = h.mkdir("u"), h.mkdir("w")
    m = h.mount_unionfs([lower], u, w, opts=("metacopy=on",))
    os.chmod(f"{m.path}/big", 0o600)
    h.umount(m)
    out = h.path("layer.tar")
    r = _export(u, "--output", out, check=False)
    assert r.returncode == 2 and b"'big'" in r.stderr and b"lowerdir" in r.stderr, r.stderr
    assert not os.path.exists(out) and not [x for x in os.listdir(h.tmp) if "layer.tar" in x]
    _export(u, "--output", out, "-o", f"lowerdir={lower}")
    x = h.mkdir("x")
    subprocess.run(["tar", "-xf", out, "-C", x], check=True)
    with open(f"{x}/big") as f:
        assert f.read() == "data" * 1000
    assert os.stat(f"{x}/big").st_mode & 0o777 == 0o600


def test_bad_input_is_refused(harness):
    h = harness
    r = _export(h.path("nope"), "--output", h.path("o.tar"), check=False)
    assert r.returncode == 2 and b"nope" in r.stderr
    assert not os.path.exists(h.path("o.tar"))
    r = _export(h.mkdir("u"), "-o", "upperdir=x", check=False)
    assert r.returncode == 2 and b"upperdir=x" in r.stderr


def test_every_whiteout_form_becomes_oci(harness):
    """xattr whiteouts (the kernel's overlay.whiteout in a directory marked
    overlay.whiteouts), veneer's own .wh. fallback files and an opaque directory that
    carries both forms: each marker once; overlay.* xattrs stay behind."""
    h = harness
    u = h.mkdir("u")
    os.makedirs(f"{u}/x")
    os.setxattr(f"{u}/x", "trusted.overlay.whiteouts", b"")
    write(f"{u}/x/gone", "")
    os.setxattr(f"{u}/x/gone", "trusted.overlay.whiteout", b"")
    write(f"{u}/x/.wh.old", "")
    write(f"{u}/x/kept", "k")
    os.setxattr(f"{u}/x/kept", "trusted.overlay.origin", b"\0\xfb\x05\0\0")
    os.makedirs(f"{u}/o")
    os.setxattr(f"{u}/o", "trusted.overlay.opaque", b"y")
    write(f"{u}/o/.wh..wh..opq", "")
    os.makedirs(f"{u}/p")
    write(f"{u}/p/.wh..wh..opq", "")
    os.makedirs(f"{u}/nox")
    write(f"{u}/nox/empty", "")
    os.mknod(f"{u}/cdev", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    out = h.path("layer.tar")
    _export(u, "--output", out)
    names = subprocess.run(["tar", "-tf", out], capture_output=True, text=True,
                           check=True).stdout.split()
    assert sorted(names) == sorted([
        ".wh.cdev", "nox/", "nox/empty", "o/", "o/.wh..wh..opq", "p/", "p/.wh..wh..opq",
        "x/", "x/.wh.gone", "x/.wh.old", "x/kept"]), names
    with tarfile.open(out) as t:
        assert not [k for m in t for k in m.pax_headers if "overlay" in k]


def test_redirected_directory_is_refused(harness):
    h = harness
    u = h.mkdir("u")
    os.makedirs(f"{u}/moved")
    os.setxattr(f"{u}/moved", "trusted.overlay.redirect", b"old")
    r = _export(u, "--output", h.path("o.tar"), check=False)
    assert r.returncode == 2 and b"'moved'" in r.stderr and b"redirect" in r.stderr
    assert not os.path.exists(h.path("o.tar"))
