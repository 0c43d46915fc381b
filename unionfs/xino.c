/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -o xino=auto|on|off: one st_ino space over layers on several filesystems, as
 * the kernel's xino. The filesystems of the layers get an index (fsid; 0 is the
 * upper's, also without an upper), which the top bits of st_ino carry above the
 * layer's own inode number; one bit below them marks numbers given out for
 * inodes too big to be mapped. Also the filesystems' uuids, which origins name.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd-util.h"
#include "log.h"
#include "unionfs.h"

#ifndef FS_IOC_GETFSUUID
struct fsuuid2 {
	__u8 len;
	__u8 uuid[16];
};
#define FS_IOC_GETFSUUID _IOR(0x15, 0, struct fsuuid2)
#endif

#define VU_FILEID_INO32_GEN 1 /* the kernel's FILEID_INO32_GEN */

int vu_params_xino(const char *value, struct vu_params *p)
{
	p->xino = VU_XINO_AUTO;
	if (!value || strcmp(value, "auto") == 0)
		return 0;
	if (strcmp(value, "on") == 0)
		p->xino = VU_XINO_ON;
	else if (strcmp(value, "off") == 0)
		p->xino = VU_XINO_OFF;
	else
		return log_error_errno(-EINVAL, "xino='%s': expected auto, on or off", value);
	return 0;
}

/*
 * Does the filesystem of fd encode file handles as 32-bit inode numbers (as ext4)?
 * The kernel's sign that its inode numbers leave the top 32 bits free.
 */
static bool vu_xino_fs_ino32(int fd)
{
	union {
		struct file_handle fh;
		unsigned char raw[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} h;
	int mnt;

	h.fh.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", &h.fh, &mnt, AT_EMPTY_PATH) < 0)
		return false;
	return h.fh.handle_type == VU_FILEID_INO32_GEN && h.fh.handle_bytes == 8;
}

static void vu_xino_fs_uuid(struct vu_xfs *x)
{
	struct fsuuid2 u = {.len = 16};

	/* Filesystems without one (ENOTTY) are told apart by nothing in a handle. */
	x->has_uuid = ioctl(x->fd, FS_IOC_GETFSUUID, &u) == 0 && u.len == 16;
	if (x->has_uuid)
		memcpy(x->uuid, u.uuid, 16);
}

static unsigned vu_xino_add_fs(struct vu_fs *fs, int layer)
{
	struct vu_xfs *x;

	fs->xfs = g_renew(struct vu_xfs, fs->xfs, fs->nxfs + 1);
	x = &fs->xfs[fs->nxfs];
	memset(x, 0, sizeof(*x));
	x->dev = fs->layers[layer].dev;
	x->fd = openat(fs->layers[layer].fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	x->present = true;
	if (x->fd >= 0)
		vu_xino_fs_uuid(x);
	return fs->nxfs++;
}

static guint vu_xino_key_hash(gconstpointer k)
{
	const struct vu_xino_key *key = k;

	return g_int64_hash(&key->ino) ^ key->fsid;
}

static gboolean vu_xino_key_equal(gconstpointer a, gconstpointer b)
{
	const struct vu_xino_key *x = a, *y = b;

	return x->ino == y->ino && x->fsid == y->fsid;
}

/*
 * Index the layers' filesystems, as the kernel does: the upper's is 0 (the slot is
 * kept without an upper), then one per other filesystem in the order of the
 * lowers. Then how many top bits of st_ino hold the index: none with one
 * filesystem or xino=off; 32 when every filesystem encodes 32-bit inode numbers in
 * its handles; else enough for the index and the overflow bit.
 */
int vu_xino_setup(struct vu_fs *fs)
{
	unsigned lower0 = fs->has_upper ? 1 : 0;
	bool ino32 = true, bad_uuid = false;

	pthread_mutex_init(&fs->xino_lock, NULL);
	fs->xino_over = g_hash_table_new_full(vu_xino_key_hash, vu_xino_key_equal, g_free, NULL);
	fs->nxfs = 0;
	if (fs->has_upper) {
		vu_xino_add_fs(fs, 0);
		fs->layers[0].fsid = 0;
	} else {
		fs->xfs = g_new0(struct vu_xfs, 1);
		fs->xfs[0].fd = -1;
		fs->nxfs = 1;
	}
	for (unsigned i = lower0; i < fs->nlayers; i++) {
		unsigned j;

		for (j = 0; j < fs->nxfs; j++)
			if (fs->xfs[j].present && fs->xfs[j].dev == fs->layers[i].dev)
				break;
		if (j == fs->nxfs) {
			j = vu_xino_add_fs(fs, i);
			/* Two lower filesystems with one uuid: origins cannot tell them apart. */
			for (unsigned k = 1; k < j; k++)
				if (fs->xfs[k].has_uuid && fs->xfs[j].has_uuid &&
				    memcmp(fs->xfs[k].uuid, fs->xfs[j].uuid, 16) == 0)
					fs->xfs[k].bad_uuid = fs->xfs[j].bad_uuid = true;
		}
		fs->layers[i].fsid = j;
	}
	for (unsigned j = 0; j < fs->nxfs; j++) {
		struct vu_xfs *x = &fs->xfs[j];
		static const unsigned char null_uuid[16];

		if (!x->present)
			continue;
		/* A null uuid names no filesystem once the layers may change offline. */
		if (j > 0 && fs->has_upper &&
		    (!x->has_uuid || memcmp(x->uuid, null_uuid, 16) == 0) &&
		    (fs->params.metacopy || fs->params.redirect_dir == VU_REDIRECT_ON))
			x->bad_uuid = true;
		if (j > 0 && fs->has_upper && x->bad_uuid)
			bad_uuid = true;
		if (x->fd < 0 || !vu_xino_fs_ino32(x->fd))
			ino32 = false;
	}

	fs->xino_bits = 0;
	if (fs->samefs) {
		if (fs->params.xino == VU_XINO_ON)
			log_info("xino=on is useless with all layers on one filesystem: ignored");
	} else if (fs->params.xino == VU_XINO_OFF) {
		fs->xino_bits = 0;
	} else if (fs->params.xino == VU_XINO_AUTO && bad_uuid) {
		log_info("a lower filesystem without a unique uuid: falling back to xino=off");
	} else if (ino32) {
		fs->xino_bits = 32;
	} else {
		/* The index (fsid 0 is the upper's), rounded up, and the overflow bit. */
		fs->xino_bits = g_bit_storage(fs->nxfs - 1) + 1;
	}
	if (fs->xino_bits)
		log_debug("xino: %u filesystems, %u upper bits of st_ino", fs->nxfs, fs->xino_bits);
	return 0;
}

void vu_xino_teardown(struct vu_fs *fs)
{
	for (unsigned j = 0; fs->xfs && j < fs->nxfs; j++)
		vc_close_nointr(fs->xfs[j].fd);
	g_clear_pointer(&fs->xfs, g_free);
	fs->nxfs = 0;
	g_clear_pointer(&fs->xino_over, g_hash_table_unref);
}

bool vu_xino_same_dev(const struct vu_fs *fs)
{
	return fs->samefs || fs->xino_bits > 0;
}

int vu_xino_fsid_of_dev(const struct vu_fs *fs, dev_t dev)
{
	for (unsigned j = 0; j < fs->nxfs; j++)
		if (fs->xfs[j].present && fs->xfs[j].dev == dev)
			return j;
	return -1;
}

/*
 * An inode whose number uses the index bits (or of no known filesystem) gets the
 * next number of the range marked by the overflow bit: unique in this mount and
 * the same for every name of the inode, but not kept across remounts. The kernel
 * does that for directories and shows other such files with a st_dev of their
 * own, which FUSE cannot give: they take numbers from the same range here.
 */
static ino_t vu_xino_overflow(struct vu_fs *fs, int fsid, uint64_t ino)
{
	unsigned shift = 64 - fs->xino_bits;
	struct vu_xino_key key = {.fsid = fsid, .ino = ino};
	gpointer v;
	uint64_t n;

	pthread_mutex_lock(&fs->xino_lock);
	if (g_hash_table_lookup_extended(fs->xino_over, &key, NULL, &v)) {
		n = GPOINTER_TO_SIZE(v);
	} else {
		n = (++fs->xino_next & (~UINT64_C(0) >> fs->xino_bits)) | UINT64_C(1) << shift;
		g_hash_table_insert(fs->xino_over, g_memdup2(&key, sizeof(key)),
				    GSIZE_TO_POINTER(n));
		/* Once at info, as the kernel rate-limits its warning; then at debug. */
		vc_log(g_hash_table_size(fs->xino_over) == 1 ? LOG_INFO : LOG_DEBUG, 0,
		       "inode number too big (ino=%" G_GUINT64_FORMAT
		       ", xino bits=%u): %" G_GUINT64_FORMAT " in this mount",
		       (guint64)ino, fs->xino_bits, (guint64)n);
	}
	pthread_mutex_unlock(&fs->xino_lock);
	return n;
}

ino_t vu_xino_map(struct vu_fs *fs, dev_t dev, ino_t ino)
{
	unsigned shift;
	int fsid;

	if (!fs->xino_bits)
		return ino;
	shift = 64 - fs->xino_bits;
	fsid = vu_xino_fsid_of_dev(fs, dev);
	if (fsid >= 0 && !((uint64_t)ino >> shift))
		return (uint64_t)ino | (uint64_t)fsid << (shift + 1);
	return vu_xino_overflow(fs, fsid, ino);
}
