# SPDX-License-Identifier: GPL-2.0-or-later
"""Rootless podman with --uidmap/--gidmap through overlay.mount_program (issue 15).

An unprivileged user made for the test (rootless_util: its own subordinate id range,
/dev/fuse opened to it) runs podman with a private storage whose mount program is the
veneer-unionfs under test, then the same with fuse-overlayfs, the oracle of the
uidmapping=/gidmapping= options. A container runs with --uidmap 0:1:2000 --gidmap 0:1:2000
(container id C is id C+1 of the user's namespace, not the default identity), so
containers/storage mounts the image's layers, stored with the ids of the user's namespace,
through the mount program with the mapping in its options instead of copying them with
shifted owners. In the container, files are made by root, chowned, made by uid 7, copied
up by a chown and a write; the owners shown inside, the ids on disk in the container's upper
and in the image's layer (host ids: the user's own for 0, its subordinate range for the
rest), and the options podman gave the mount program are checked, and must be those of
fuse-overlayfs.
"""
import io
import os
import shutil
import subprocess
import tarfile
import time

import pytest

from podman_util import ULIMITS, sanitizer_reports
from rootless_util import unprivileged_user
from veneer_harness import REPO, require, sanitizer_env

IMAGE = "localhost/veneer-idmap:latest"
MAP = "0:1:2000"
RUN_OPTS = ULIMITS + ["--network", "none", "--uidmap", MAP,
                      "--gidmap", MAP]

# Made in the container as root (and /d1000/by7 as 7:8, through podman exec --user).
MAKE = """
set -e
echo root > /by-root
echo f > /f && chown 5:6 /f
mkdir /d1000 && chown 1000:1000 /d1000 && chmod 777 /d1000
mkdir /srv/new && chown 1999:1998 /srv/new
chown 12:13 /srv/chowned
echo more >> /etc/passwd
"""
SHOWN = ["/by-root", "/f", "/d1000", "/d1000/by7", "/srv", "/srv/new", "/srv/owned",
         "/srv/chowned", "/etc", "/etc/passwd", "/bin/busybox", "/etc/mtab"]
# Container ids of each, as the container must show them.
EXPECTED = {
    "/by-root": (0, 0), "/f": (5, 6), "/d1000": (1000, 1000), "/d1000/by7": (7, 8),
    "/srv": (0, 0), "/srv/new": (1999, 1998), "/srv/owned": (33, 44), "/srv/chowned": (12, 13),
    "/etc": (0, 0), "/etc/passwd": (0, 0), "/bin/busybox": (0, 0),
    # podman makes it before the container starts, as root of its user namespace, which
    # the mapping does not cover (stored with the overflow ids, as fuse-overlayfs does;
    # veneer refused it with EOVERFLOW, so no such container started), then gives it to
    # the container's root.
    "/etc/mtab": (0, 0),
}
# Where each is on disk: the container's upper ("c") or the image's layer ("i").
IN_UPPER = {"/by-root", "/f", "/d1000", "/d1000/by7", "/srv", "/srv/new", "/srv/chowned",
            "/etc", "/etc/passwd", "/etc/mtab"}
IN_IMAGE = {"/srv/owned", "/bin/busybox", "/srv/chowned", "/etc/passwd"}


class RootlessPodman:
    """podman run by user, with a storage, run root, config, HOME and XDG_RUNTIME_DIR of its
    own below the user's directory, and mount_program as its overlay.mount_program."""

    def __init__(self, user, name, mount_program):
        self.user = user
        self.mount_program = mount_program
        self.base = user.mkdir(name)
        self.root = user.mkdir(name, "root")
        self.runroot = user.mkdir(name, "run")  # podman refuses one over 50 characters
        assert len(self.runroot) < 50, self.runroot
        self.tmpdir = user.mkdir(name, "tmp")
        self.asan_dir = user.mkdir(name, "asan")
        home = user.mkdir(name, "home")
        xdg = user.mkdir(name, "xdg", mode=0o700)
        cfg = user.mkdir(name, "cfg")
        with open(os.path.join(cfg, "containers.conf"), "w") as f:
            f.write('[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
                    f'runtime = "runc"\nevents_logfile_path = "{self.tmpdir}/events.log"\n'
                    '[containers]\nnetns = "none"\n')
        with open(os.path.join(cfg, "storage.conf"), "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\nrunroot = "{self.runroot}"\n'
                    f'graphroot = "{self.root}"\nrootless_storage_path = "{self.root}"\n'
                    f'[storage.options.overlay]\nmount_program = "{mount_program}"\n')
        with open(os.path.join(cfg, "registries.conf"), "w") as f:
            f.write("unqualified-search-registries = []\n")
        env = sanitizer_env({})
        # The mount program inherits podman's environment: its sanitizer reports go to files.
        env["ASAN_OPTIONS"] += f":log_path={self.asan_dir}/asan"
        env["UBSAN_OPTIONS"] += f":log_path={self.asan_dir}/ubsan"
        env.update(HOME=home, XDG_RUNTIME_DIR=xdg, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                   XDG_DATA_HOME=os.path.join(home, ".local/share"),
                   CONTAINERS_CONF=os.path.join(cfg, "containers.conf"),
                   CONTAINERS_STORAGE_CONF=os.path.join(cfg, "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=os.path.join(cfg, "registries.conf"),
                   TMPDIR=self.tmpdir)
        self.env = env
        self.argv = ["podman", "--root", self.root, "--runroot", self.runroot,
                     "--tmpdir", self.tmpdir, "--storage-driver", "overlay",
                     "--storage-opt", f"overlay.mount_program={mount_program}",
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]

    def __call__(self, *args, check=True, timeout=240):
        r = self.user.run(self.argv + list(args), env=self.env, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n"
                                 f"{r.stdout}\n{r.stderr}")
        return r

    def mount_program_cmdlines(self):
        """The command lines of the running mount program daemons of this storage."""
        want = os.path.realpath(self.mount_program)
        out = []
        for e in os.listdir("/proc"):
            if not e.isdigit():
                continue
            try:
                if os.path.realpath(f"/proc/{e}/exe") != want:
                    continue
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
            except OSError:
                continue
            if any(self.root in a for a in argv):
                out.append(argv)
        return out

    def sanitizer_reports(self):
        return sanitizer_reports(self.asan_dir)

    def teardown(self):
        """Remove the containers and images; the mount programs must then exit by themselves."""
        problems = []
        for args in (("rm", "-a", "-f", "-t", "0"), ("rmi", "-a", "-f")):
            try:
                r = self(*args, check=False, timeout=120)
                if r.returncode != 0:
                    problems.append(f"podman {' '.join(args)}: {r.stderr.strip()[-300:]}")
            except subprocess.TimeoutExpired:
                problems.append(f"podman {' '.join(args)} timed out")
        deadline = time.monotonic() + 15
        while self.mount_program_cmdlines() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.mount_program_cmdlines()
        if left:
            problems.append(f"mount program daemons left running: {left}")
        problems += [f"sanitizer report from the mount program:\n{r}"
                     for r in self.sanitizer_reports()]
        return problems


def _image_tar(user):
    """The busybox-static root (tests/fixtures/busybox-rootfs.sh) plus /srv with two files
    owned by 33:44, readable by the user."""
    tar = os.path.join(user.top, "image.tar")
    r = subprocess.run([os.path.join(REPO, "tests", "fixtures", "busybox-rootfs.sh"), tar],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with tarfile.open(tar, "a") as t:
        d = tarfile.TarInfo("./srv")
        d.type, d.mode, d.uid, d.gid = tarfile.DIRTYPE, 0o755, 0, 0
        t.addfile(d)
        for name in ("owned", "chowned"):
            data = f"{name}\n".encode()
            f = tarfile.TarInfo(f"./srv/{name}")
            f.mode, f.uid, f.gid, f.size = 0o644, 33, 44, len(data)
            t.addfile(f, io.BytesIO(data))
    os.chmod(tar, 0o644)
    return tar


def _owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def _scenario(pm, tar):
    """Run the container; returns what it showed, the ids on disk (host ids) of each file,
    and the options the mount program was given."""
    pm("import", tar, IMAGE)
    pm("run", "-d", "--name", "idm", *RUN_OPTS, IMAGE, "sleep", "600")
    try:
        maps = pm("exec", "idm", "cat", "/proc/self/uid_map", "/proc/self/gid_map").stdout
        assert maps.split() == ["0", "1", "2000"] * 2, maps
        pm("exec", "idm", "sh", "-c", MAKE)
        pm("exec", "--user", "7:8", "idm", "sh", "-c", "echo seven > /d1000/by7")
        out = pm("exec", "idm", "stat", "-c", "%n %u:%g", *SHOWN).stdout
        cmdlines = pm.mount_program_cmdlines()
        upper = pm("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "idm").stdout.strip()
        image = pm("image", "inspect", "--format", "{{.GraphDriver.Data.UpperDir}}",
                   IMAGE).stdout.strip()
    finally:
        pm("stop", "-t", "0", "idm", check=False)
    shown = {}
    for line in out.splitlines():
        name, ids = line.split()
        shown[name] = tuple(int(x) for x in ids.split(":"))
    assert upper.startswith(pm.root + "/") and image.startswith(pm.root + "/"), (upper, image)
    disk = {}
    for name in SHOWN:
        if name in IN_UPPER:
            disk["upper" + name] = _owner(upper + name)
        if name in IN_IMAGE:
            disk["image" + name] = _owner(image + name)
    pm("rm", "idm")
    return shown, disk, cmdlines


def _options(cmdlines):
    """The -o options of the one mount program daemon, as a list."""
    assert len(cmdlines) == 1, cmdlines
    argv = cmdlines[0]
    return argv[argv.index("-o") + 1].split(",")


@pytest.fixture
def rootless_podman_user(harness, need_fuse):
    for tool in ("podman", "runc", "newuidmap", "newgidmap", "fuse-overlayfs"):
        require(shutil.which(tool) is not None, f"{tool} is not installed (scripts/bootstrap "
                "--all installs podman, runc, uidmap and fuse-overlayfs)")
    require(os.access("/bin/busybox", os.X_OK), "busybox-static is not installed")
    with unprivileged_user("vrpod", subids=True) as user:
        pms = []
        try:
            yield user, pms
        finally:
            problems = []
            for pm in pms:
                problems += pm.teardown()
        # What podman leaves running (its rootless pause process) goes with the user.
        if problems:
            raise AssertionError("; ".join(problems))


def test_rootless_uidmap_through_mount_program(rootless_podman_user, unionfs_bin):
    user, pms = rootless_podman_user
    tar = _image_tar(user)

    def host(kind, cid):
        """The host id of a container id on disk: the mapping is in the mount program, so the
        upper holds the container ids as ids of the user's namespace (0 is the user, N > 0
        its subordinate id N-1)."""
        own = user.pw.pw_uid if kind == "u" else user.pw.pw_gid
        sub = user.subuid if kind == "u" else user.subgid
        return own if cid == 0 else sub + cid - 1

    want_disk = {}
    for name, (uid, gid) in EXPECTED.items():
        for where, names in (("upper", IN_UPPER), ("image", IN_IMAGE)):
            if name in names:
                want_disk[where + name] = (host("u", uid), host("g", gid))
    # The image's files keep their image owners (the copy-ups and chown are in the upper).
    want_disk["image/srv/chowned"] = (host("u", 33), host("g", 44))
    want_disk["image/etc/passwd"] = (host("u", 0), host("g", 0))

    results = {}
    for name, program in (("veneer", unionfs_bin), ("fuse-overlayfs",
                                                    shutil.which("fuse-overlayfs"))):
        pm = RootlessPodman(user, name, program)
        pms.append(pm)
        results[name] = _scenario(pm, tar)

    shown, disk, cmdlines = results["veneer"]
    opts = _options(cmdlines)
    print("veneer-unionfs argv:", cmdlines[0])  # shown when the test fails
    # containers/storage of podman 4.3 writes a ':' before the first range.
    assert [o for o in opts if o.startswith(("uidmapping=", "gidmapping="))] in (
        [f"uidmapping={MAP}", f"gidmapping={MAP}"],
        [f"uidmapping=:{MAP}", f"gidmapping=:{MAP}"]), opts
    assert shown == EXPECTED
    assert disk == want_disk

    fo_shown, fo_disk, fo_cmdlines = results["fuse-overlayfs"]
    assert fo_shown == shown
    assert fo_disk == disk
    # The same options (the layers' paths differ between the two storages).
    fo_opts = _options(fo_cmdlines)
    assert [o.split("=", 1)[0] for o in fo_opts] == [o.split("=", 1)[0] for o in opts]
    assert [o for o in fo_opts if o.startswith(("uidmapping=", "gidmapping="))] == \
        [o for o in opts if o.startswith(("uidmapping=", "gidmapping="))]
