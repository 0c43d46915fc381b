# SPDX-License-Identifier: GPL-2.0-or-later
"""Lower layers in kernel overlayfs on-disk format, shared by the union suites.

make_layers() builds two lowers (a whiteout, an opaque dir, hard links, a
symlink, a sparse file, odd modes and owners, a user xattr, a C program);
mutate() changes a merged tree in every way that writes to the upper dir.
"""
import os
import shutil

HELLO_C = """\
#include <stdio.h>
#include "greet.h"
int main(void)
{
	printf("%s, %d\\n", GREETING, 6 * 7);
	return 0;
}
"""


def write_file(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    if mode is not None:
        os.chmod(path, mode)


def make_layers(h):
    """Two lowers: l1 at the bottom, l2 on top of it (kernel on-disk format)."""
    l1 = h.mkdir("l1")
    l2 = h.mkdir("l2")
    for i in range(20):
        write_file(f"{l1}/usr/share/doc/f{i:02}.txt", f"doc {i}\n" * (i + 1))
    write_file(f"{l1}/usr/share/doc/b.txt", "hidden by a whiteout\n")
    write_file(f"{l1}/etc/conf", "lower conf\n", 0o640)
    os.chown(f"{l1}/etc/conf", 1000, 1000)
    write_file(f"{l1}/etc/secret", "s\n", 0o600)
    write_file(f"{l1}/data/hl1", "hard linked\n")
    os.link(f"{l1}/data/hl1", f"{l1}/data/hl2")
    os.symlink("../etc/conf", f"{l1}/data/conf-link")
    with open(f"{l1}/data/sparse", "wb") as f:
        f.truncate(4 << 20)
        f.seek(1 << 20)
        f.write(b"middle")
    write_file(f"{l1}/data/xattr", "x\n")
    os.setxattr(f"{l1}/data/xattr", "user.veneer", b"value")
    os.makedirs(f"{l1}/private")
    os.chmod(f"{l1}/private", 0o700)
    write_file(f"{l1}/opq/old1", "old\n")
    write_file(f"{l1}/opq/old2", "old\n")
    write_file(f"{l1}/src/greet.h", '#define GREETING "hello from the lower"\n')
    write_file(f"{l1}/src/hello.c", HELLO_C)

    write_file(f"{l2}/etc/conf", "upper-layer conf\n", 0o644)
    os.makedirs(f"{l2}/usr/share/doc")
    os.mknod(f"{l2}/usr/share/doc/b.txt", 0o600 | 0o020000, os.makedev(0, 0))
    write_file(f"{l2}/opq/new", "new\n")
    os.setxattr(f"{l2}/opq", "trusted.overlay.opaque", b"y")
    write_file(f"{l2}/src/greet.h", '#define GREETING "hello from the top"\n')
    return [l2, l1]


def mutate(m):
    """Change the merged tree at m in every way that writes to the upper dir."""
    write_file(f"{m}/new/deep/file", "new file\n", 0o640)      # new dirs and a file
    os.link(f"{m}/new/deep/file", f"{m}/new/file-link")        # hard link of an upper file
    os.symlink("deep/file", f"{m}/new/sym")
    with open(f"{m}/usr/share/doc/f02.txt", "a") as f:         # data copy-up
        f.write("appended\n")
    os.chmod(f"{m}/etc/secret", 0o604)                         # metadata copy-up
    os.chown(f"{m}/usr/share/doc/f04.txt", 123, 456)
    os.truncate(f"{m}/usr/share/doc/f05.txt", 3)
    os.setxattr(f"{m}/data/xattr", "user.added", b"2")
    os.unlink(f"{m}/usr/share/doc/f06.txt")                    # whiteout
    os.rename(f"{m}/usr/share/doc/f08.txt", f"{m}/etc/f08-moved")  # whiteout + copy
    shutil.rmtree(f"{m}/src")                                  # whiteout of a merged dir
    os.mkdir(f"{m}/src")                                       # ... made again: opaque
    write_file(f"{m}/src/only", "only this\n")
    os.unlink(f"{m}/opq/new")                                  # whiteout in an opaque dir
    os.rmdir(f"{m}/private")                                   # whiteout of a lower dir
    os.rename(f"{m}/data/hl1", f"{m}/data/hl1-renamed")        # breaks the lower hard link
    os.link(f"{m}/usr/share/doc/f09.txt", f"{m}/etc/f09-link")  # link copies the source up
    os.chmod(f"{m}/usr/share", 0o750)                          # copy-up of a lower dir
    os.utime(f"{m}/usr/share/doc/f10.txt", ns=(10**18, 10**18))  # times copy-up
    write_file(f"{m}/usr/share/doc/b.txt", "b is back\n")      # over a lower whiteout
