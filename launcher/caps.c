/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Capabilities, through libcap-ng: names as Docker spells them (with or
 * without CAP_, any case), the container's set from the OCI default,
 * --privileged, --cap-add and --cap-drop, and applying one set to the
 * bounding, permitted, effective and (optionally) inheritable sets with the
 * ambient set emptied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <cap-ng.h>
#include <linux/capability.h>

#include "fd-util.h"
#include "launcher.h"
#include "log.h"
#include "parse-util.h"

/* The highest capability the running kernel knows (and libcap-ng can name). */
int vr_cap_last(void)
{
	static int last = -1;
	g_autofree char *text = NULL;
	unsigned v;

	if (last >= 0)
		return last;
	last = CAP_LAST_CAP;
	if (vc_read_file_at(AT_FDCWD, "/proc/sys/kernel/cap_last_cap", &text, NULL) >= 0 &&
	    vc_parse_uint(g_strstrip(text), &v) == 0 && v < 64)
		last = (int)v;
	while (last > 0 && !capng_capability_to_name((unsigned)last))
		last--;
	return last;
}

uint64_t vr_caps_all(void)
{
	int last = vr_cap_last();

	return last >= 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
}

/* "NET_ADMIN", "net_admin", "CAP_NET_ADMIN" -> 12; -EINVAL for anything else. */
int vr_cap_from_name(const char *name)
{
	g_autofree char *lower = NULL;
	const char *n;
	int cap;

	if (g_ascii_strncasecmp(name, "CAP_", 4) == 0)
		name += 4;
	if (!*name || strlen(name) >= VR_CAP_NAME_MAX)
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if (!g_ascii_isalnum(*p) && *p != '_')
			return -EINVAL;
	lower = g_ascii_strdown(name, -1);
	cap = capng_name_to_capability(lower);
	if (cap < 0 || cap > vr_cap_last())
		return -EINVAL;
	/* libcap-ng also takes numbers; Docker does not. */
	n = capng_capability_to_name((unsigned)cap);
	if (!n || strcmp(n, lower) != 0)
		return -EINVAL;
	return cap;
}

const char *vr_cap_name(int cap, char buf[static VR_CAP_NAME_MAX])
{
	const char *n = capng_capability_to_name((unsigned)cap);
	g_autofree char *up = NULL;

	if (!n) {
		snprintf(buf, VR_CAP_NAME_MAX, "CAP_%d", cap);
		return buf;
	}
	up = g_ascii_strup(n, -1);
	snprintf(buf, VR_CAP_NAME_MAX, "CAP_%s", up);
	return buf;
}

static bool vr_caps_has_all(GPtrArray *names)
{
	for (guint i = 0; i < names->len; i++)
		if (g_ascii_strcasecmp(names->pdata[i], "ALL") == 0)
			return true;
	return false;
}

/*
 * What veneer-run can hand on: its permitted set within its bounding set, or,
 * rootless (where the user namespace grants every capability the bounding set
 * allows), the bounding set alone.
 */
int vr_caps_available(uint64_t *ret)
{
	uint64_t avail = 0;
	bool userns = geteuid() != 0;

	capng_setpid(getpid());
	if (capng_get_caps_process() < 0)
		return log_error_errno(-EIO, "cannot read veneer-run's own capabilities");
	for (int i = 0; i <= vr_cap_last(); i++) {
		if (capng_have_capability(CAPNG_BOUNDING_SET, (unsigned)i) != 1)
			continue;
		if (userns || capng_have_capability(CAPNG_PERMITTED, (unsigned)i) == 1)
			avail |= 1ULL << i;
	}
	*ret = avail;
	return 0;
}

/*
 * Docker's rules: the default set (every capability with --privileged or
 * --cap-add ALL), emptied by --cap-drop ALL, less the capabilities dropped by
 * name, plus those added by name. A name both added and dropped is an error
 * (-EINVAL), and so is adding one veneer-run does not hold itself (-EPERM);
 * ret_error says which.
 */
int vr_caps_resolve(const struct vr_security *sec, uint64_t available, uint64_t *ret,
		    char **ret_error)
{
	uint64_t caps = VR_CAPS_DEFAULT, added = 0;
	char nbuf[VR_CAP_NAME_MAX];

	if (sec->privileged || vr_caps_has_all(sec->cap_add))
		caps = vr_caps_all();
	if (vr_caps_has_all(sec->cap_drop))
		caps = 0;
	for (guint i = 0; i < sec->cap_add->len; i++) {
		int c = vr_cap_from_name(sec->cap_add->pdata[i]);

		if (c < 0)
			continue; /* ALL; names were checked when parsed */
		added |= 1ULL << c;
	}
	for (guint i = 0; i < sec->cap_drop->len; i++) {
		int c = vr_cap_from_name(sec->cap_drop->pdata[i]);

		if (c < 0)
			continue;
		if (added & (1ULL << c)) {
			*ret_error = g_strdup_printf("%s is both in --cap-add and in --cap-drop",
						     vr_cap_name(c, nbuf));
			return -EINVAL;
		}
		caps &= ~(1ULL << c);
	}
	for (int c = 0; c < 64; c++) {
		if ((added & (1ULL << c)) && !(available & (1ULL << c))) {
			*ret_error = g_strdup_printf("--cap-add %s: veneer-run does not hold "
						     "%s itself (not in its bounding or "
						     "permitted set)",
						     vr_cap_name(c, nbuf), vr_cap_name(c, nbuf));
			return -EPERM;
		}
	}
	/* The default or "all" set shrinks silently to what can be had. */
	*ret = (caps | added) & available;
	return 0;
}

/*
 * Make caps the calling process's permitted and effective sets (and
 * inheritable set when asked), with no ambient capabilities; with bounding,
 * its bounding set too, dropped first while CAP_SETPCAP is still effective.
 */
int vr_caps_apply(uint64_t caps, bool inheritable, bool bounding)
{
	capng_type_t sets = CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET;
	int r;

	if (inheritable)
		sets |= CAPNG_INHERITABLE;
	/* libcap-ng keeps the pid it first saw: after a fork it would act on the parent. */
	capng_setpid(getpid());
	capng_clear(CAPNG_SELECT_ALL);
	for (int c = 0; c <= vr_cap_last(); c++)
		if ((caps & (1ULL << c)) && capng_update(CAPNG_ADD, sets, (unsigned)c) < 0)
			return -EINVAL;
	errno = 0;
	r = capng_apply(bounding ? CAPNG_SELECT_ALL : CAPNG_SELECT_CAPS | CAPNG_SELECT_AMBIENT);
	if (r < 0)
		return errno ? -errno : -EPERM;
	/* Whatever libcap-ng did with its ambient state, none is left. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	return 0;
}

/* Only the bounding set (the rest stays for a change of user that follows). */
int vr_caps_bound(uint64_t caps)
{
	errno = 0;
	capng_setpid(getpid());
	capng_get_caps_process();
	capng_clear(CAPNG_SELECT_BOUNDS);
	for (int c = 0; c <= vr_cap_last(); c++)
		if ((caps & (1ULL << c)) &&
		    capng_update(CAPNG_ADD, CAPNG_BOUNDING_SET, (unsigned)c) < 0)
			return -EINVAL;
	if (capng_apply(CAPNG_SELECT_BOUNDS) < 0)
		return errno ? -errno : -EPERM;
	return 0;
}
