/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-oci-hook: main(), the options, and the steps in order: the OCI state
 * from stdin, the opt-out annotation, the bundle's config.json, the bind of
 * veneer-procfs's files (bind.c), the CPU affinity (affinity.c). Whatever
 * goes wrong on veneer's side is logged and the container starts with the
 * kernel's /proc: only a bad command line (the hooks.d file) or a state that
 * is not one exits non-zero.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fd-util.h"
#include "fuse-util.h"
#include "hook.h"
#include "log.h"
#include "parse-util.h"

enum {
	VH_OPT_PROCFS_MOUNT = 0x100,
	VH_OPT_TIMEOUT,
	VH_OPT_NO_AFFINITY,
	VH_OPT_LOG,
};

static const struct option vh_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"debug", no_argument, NULL, 'd'},
	{"procfs-mount", required_argument, NULL, VH_OPT_PROCFS_MOUNT},
	{"timeout", required_argument, NULL, VH_OPT_TIMEOUT},
	{"no-affinity", no_argument, NULL, VH_OPT_NO_AFFINITY},
	{"log", required_argument, NULL, VH_OPT_LOG},
	{},
};

/* Stages whose state carries the pid of a container that has not pivoted yet. */
static const char *const vh_stages[] = {"prestart", "createRuntime"};
/* The other stages of the runtime spec: nothing to do there. */
static const char *const vh_idle_stages[] = {"createContainer", "startContainer", "poststart",
					     "poststop"};

static void vh_usage(void)
{
	printf("usage: veneer-oci-hook [options] [prestart|createRuntime]\n"
	       "\n"
	       "An OCI hook for podman, CRI-O and other runtimes: reads a container's state on\n"
	       "stdin and binds veneer-procfs's files over its /proc/{meminfo,cpuinfo,stat,\n"
	       "uptime,loadavg,swaps,diskstats} and /sys/devices/system/cpu/{online,possible,\n"
	       "present}, so free, top, uptime and nproc show the container's limits; with a\n"
	       "CPU quota it narrows the CPU affinity of the container's first process to the\n"
	       "CPUs veneer-procfs shows. When veneer-procfs is not running or does not answer,\n"
	       "or the container's /proc is covered already, it logs why and changes nothing.\n"
	       "A container annotated " VH_ANNOTATION "=off is left alone.\n"
	       "\n"
	       "  --procfs-mount=DIR  where veneer-procfs is mounted "
	       "(default " VH_DEFAULT_PROCFS_MOUNT ")\n"
	       "  --timeout=MS        how long veneer-procfs may take to answer (default %u)\n"
	       "  --no-affinity       leave the CPU affinity as it is (pairs with veneer-procfs\n"
	       "                      -o cpu_quota=0)\n"
	       "  --log=syslog|stderr where messages go (default syslog)\n"
	       "  -d, --debug         also log debug messages\n"
	       "  -h, --help          this help\n"
	       "  -V, --version       the version\n"
	       "\n"
	       "Exit status: 0, also when /proc was left as it is; 2 for a bad option or a state\n"
	       "on stdin that is not one.\n",
	       VH_DEFAULT_TIMEOUT_MS);
}

static bool vh_in(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* 0: go on; 1: done (--help, --version); < 0: a bad option (logged). */
static int vh_parse_args(int argc, char **argv, struct vh_opts *o, bool *ret_idle)
{
	unsigned v;
	int c;

	*ret_idle = false;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hVd", vh_options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			vh_usage();
			return 1;
		case 'V':
			printf("veneer-oci-hook %s\n", VENEER_VERSION);
			return 1;
		case 'd':
			vc_log_set_level(LOG_DEBUG);
			break;
		case VH_OPT_PROCFS_MOUNT:
			if (optarg[0] != '/') {
				log_error("bad value '%s' for --procfs-mount (an absolute path)",
					  optarg);
				return -EINVAL;
			}
			o->procfs_mount = optarg;
			break;
		case VH_OPT_TIMEOUT:
			if (vc_parse_uint(optarg, &v) < 0 || v < 1 || v > 600000) {
				log_error("bad value '%s' for --timeout (1 to 600000 ms)", optarg);
				return -EINVAL;
			}
			o->timeout_ms = v;
			break;
		case VH_OPT_NO_AFFINITY:
			o->affinity = false;
			break;
		case VH_OPT_LOG:
			if (strcmp(optarg, "syslog") == 0) {
				o->log_stderr = false;
			} else if (strcmp(optarg, "stderr") == 0) {
				o->log_stderr = true;
			} else {
				log_error("bad value '%s' for --log (syslog or stderr)", optarg);
				return -EINVAL;
			}
			break;
		case ':':
			log_error("option '%s' needs a value", argv[optind - 1]);
			return -EINVAL;
		default:
			log_error("unknown option '%s' (see --help)", argv[optind - 1]);
			return -EINVAL;
		}
	}
	if (argc - optind > 1) {
		log_error("unexpected argument '%s' (one stage at most)", argv[optind + 1]);
		return -EINVAL;
	}
	if (optind < argc) {
		const char *stage = argv[optind];

		if (vh_in(stage, vh_idle_stages, G_N_ELEMENTS(vh_idle_stages))) {
			*ret_idle = true;
		} else if (!vh_in(stage, vh_stages, G_N_ELEMENTS(vh_stages))) {
			log_error("unknown stage '%s' (prestart or createRuntime)", stage);
			return -EINVAL;
		}
	}
	return 0;
}

static int vh_read_state(struct vh_state *ret)
{
	g_autofree char *buf = g_malloc(VH_STATE_MAX + 1);
	ssize_t n = vc_read_all(STDIN_FILENO, buf, VH_STATE_MAX + 1);

	if (n < 0)
		return log_error_errno((int)n, "cannot read the OCI state on stdin");
	if (n > VH_STATE_MAX) {
		log_error("the OCI state on stdin is larger than %d bytes", VH_STATE_MAX);
		return -EFBIG;
	}
	return vh_state_parse(buf, (size_t)n, ret);
}

/* The opt-out annotation, from the state or (older runtimes) config.json. */
static const char *vh_annotation(const struct vh_state *s, const struct vh_config *c)
{
	const char *v = g_hash_table_lookup(s->annotations, VH_ANNOTATION);

	return v || !c->annotations ? v : g_hash_table_lookup(c->annotations, VH_ANNOTATION);
}

int main(int argc, char **argv)
{
	struct vh_opts o = {
		.procfs_mount = VH_DEFAULT_PROCFS_MOUNT,
		.timeout_ms = VH_DEFAULT_TIMEOUT_MS,
		.affinity = true,
	};
	struct vh_state s = {0};
	struct vh_config c = {0};
	unsigned bound = 0, want, threads;
	bool idle;
	int r;

	/*
	 * A bad command line (the hooks.d file's) or state (the runtime's) fails the
	 * container: said on stderr, which runtimes show then. The rest goes to syslog.
	 */
	vc_log_init("veneer-oci-hook");
	r = vh_parse_args(argc, argv, &o, &idle);
	if (r != 0)
		return r < 0 ? VC_EXIT_USAGE : VC_EXIT_OK;
	if (idle)
		return VC_EXIT_OK;
	if (vh_read_state(&s) < 0)
		return VC_EXIT_USAGE;
	if (!o.log_stderr)
		vc_log_set_target(VC_LOG_SYSLOG);
	if (vh_annotation_off(g_hash_table_lookup(s.annotations, VH_ANNOTATION))) {
		log_info("container %s: annotated " VH_ANNOTATION "=off, left alone", s.id);
		goto out;
	}
	if (vh_config_load(s.bundle, &c) < 0) {
		log_notice("container %s: /proc left as it is", s.id);
		goto out;
	}
	if (vh_annotation_off(vh_annotation(&s, &c))) {
		log_info("container %s: annotated " VH_ANNOTATION "=off, left alone", s.id);
		goto out;
	}
	if (!c.mount_ns) {
		log_notice("container %s has no mount namespace of its own: /proc left as it is",
			   s.id);
		goto out;
	}
	if (vh_bind_procfs(&o, s.pid, c.root, &bound) < 0 || bound == 0)
		goto out;
	want = o.affinity ? vh_cpu_want(c.quota, c.period) : 0;
	if (vh_affinity_narrow(s.pid, want, &threads) < 0)
		log_warning("container %s: the CPU affinity is left as it is", s.id);
	log_info("container %s: %u files of '%s' bound over /proc and /sys%s", s.id, bound,
		 o.procfs_mount, threads ? ", CPU affinity narrowed" : "");
out:
	vh_config_done(&c);
	vh_state_done(&s);
	return VC_EXIT_OK;
}
