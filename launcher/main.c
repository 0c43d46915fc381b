/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-run's entry point: the getopt_long table, one specific error per bad
 * flag, the validation of every input before anything is created, and the
 * dispatch to a run, --list, --inspect or --cleanup. Exit codes: launcher.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher.h"
#include "log.h"
#include "parse-util.h"
#include "path-util.h"

#define VR_DEFAULT_PROCFS_MOUNT "/var/lib/veneer/procfs"
#define VR_DEFAULT_STATE_DIR "/run/veneer"
#define VR_DEFAULT_STOP_TIMEOUT 10

enum {
	VR_OPT_LAYERS = 0x100,
	VR_OPT_UPPER,
	VR_OPT_KEEP,
	VR_OPT_MEMORY,
	VR_OPT_CPUS,
	VR_OPT_CPUSET,
	VR_OPT_PIDS,
	VR_OPT_IGNORE_LIMITS,
	VR_OPT_NO_PROCFS,
	VR_OPT_PROCFS_MOUNT,
	VR_OPT_HOSTNAME,
	VR_OPT_NET,
	VR_OPT_ROOTLESS,
	VR_OPT_STATE_DIR,
	VR_OPT_NAME,
	VR_OPT_UNIONFS,
	VR_OPT_PROCFS,
	VR_OPT_STOP_TIMEOUT,
	VR_OPT_LIST,
	VR_OPT_INSPECT,
	VR_OPT_CLEANUP,
	VR_OPT_MOUNT,
};

static const struct option vr_options[] = {
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"debug", no_argument, NULL, 'd'},
	{"layers", required_argument, NULL, VR_OPT_LAYERS},
	{"upper", required_argument, NULL, VR_OPT_UPPER},
	{"keep", no_argument, NULL, VR_OPT_KEEP},
	{"memory", required_argument, NULL, VR_OPT_MEMORY},
	{"cpus", required_argument, NULL, VR_OPT_CPUS},
	{"cpuset-cpus", required_argument, NULL, VR_OPT_CPUSET},
	{"pids-limit", required_argument, NULL, VR_OPT_PIDS},
	{"ignore-limits", no_argument, NULL, VR_OPT_IGNORE_LIMITS},
	{"no-procfs", no_argument, NULL, VR_OPT_NO_PROCFS},
	{"procfs-mount", required_argument, NULL, VR_OPT_PROCFS_MOUNT},
	{"hostname", required_argument, NULL, VR_OPT_HOSTNAME},
	{"net", required_argument, NULL, VR_OPT_NET},
	{"rootless", no_argument, NULL, VR_OPT_ROOTLESS},
	{"env", required_argument, NULL, 'e'},
	{"workdir", required_argument, NULL, 'w'},
	{"user", required_argument, NULL, 'u'},
	{"volume", required_argument, NULL, 'v'},
	{"mount", required_argument, NULL, VR_OPT_MOUNT},
	{"state-dir", required_argument, NULL, VR_OPT_STATE_DIR},
	{"name", required_argument, NULL, VR_OPT_NAME},
	{"unionfs", required_argument, NULL, VR_OPT_UNIONFS},
	{"procfs", required_argument, NULL, VR_OPT_PROCFS},
	{"stop-timeout", required_argument, NULL, VR_OPT_STOP_TIMEOUT},
	{"list", no_argument, NULL, VR_OPT_LIST},
	{"inspect", required_argument, NULL, VR_OPT_INSPECT},
	{"cleanup", no_argument, NULL, VR_OPT_CLEANUP},
	VR_SECURITY_LONG_OPTIONS,
	{},
};

static void vr_help(void)
{
	printf("Usage: veneer-run [OPTIONS] [--] COMMAND [ARG...]\n"
	       "       veneer-run --list | --inspect ID | --cleanup [--state-dir DIR]\n"
	       "\n"
	       "Run COMMAND in new mount, pid, uts, ipc (and network) namespaces on a\n"
	       "veneer-unionfs root filesystem, limited by a new cgroup, with a /proc whose\n"
	       "meminfo, cpuinfo, stat, uptime, ... come from veneer-procfs.\n"
	       "\n"
	       "Root filesystem:\n"
	       "      --layers L1:L2:...   read-only layers, leftmost on top (\\: for a colon);\n"
	       "                           default: the host's / as the single base layer\n"
	       "      --upper DIR          writable layer, kept after exit; default: a fresh\n"
	       "                           one in the state directory, removed on exit\n"
	       "      --keep               keep the fresh upper layer after exit\n"
	       "  -v, --volume HOST:CTR[:ro|:nocopy]\n"
	       "                           bind HOST at CTR; an empty HOST directory first gets\n"
	       "                           a copy of CTR's content in the image (not with\n"
	       "                           nocopy); \\: for a colon in a path\n"
	       "      --mount type=bind,src=HOST,dst=CTR[,ro]\n"
	       "                           bind HOST (which must exist) at CTR, Docker's\n"
	       "                           spelling: paths may hold ':', quoted fields ','; no\n"
	       "                           copy into HOST\n"
	       "Limits (a new cgroup, removed on exit):\n"
	       "      --memory SIZE        memory limit, e.g. 256M, 1G\n"
	       "      --cpus N             CPU quota, e.g. 0.5; also narrows the CPU affinity\n"
	       "                           to ceil(N) CPUs so nproc agrees with /proc\n"
	       "      --cpuset-cpus LIST   CPUs the container may use, e.g. 0 or 0-1\n"
	       "      --pids-limit N       maximum number of tasks\n"
	       "      --ignore-limits      rootless: run without limits that cannot be applied\n"
	       "                           (a warning names each) instead of refusing\n"
	       "/proc:\n"
	       "      --no-procfs          plain procfs, no veneer-procfs files over it\n"
	       "      --procfs-mount DIR   the shared veneer-procfs instance, started there when\n"
	       "                           none runs (default %s,\n"
	       "                           or $VENEER_PROCFS_MOUNT)\n"
	       "Namespaces and process:\n"
	       "      --hostname NAME      host name in the uts namespace (default: the ID)\n"
	       "      --net none|host      none (default): new network namespace, loopback up\n"
	       "      --rootless           user namespace mapping the caller to root (automatic\n"
	       "                           when not run as root)\n"
	       "  -e, --env KEY[=VAL]      set an environment variable (KEY alone: the caller's)\n"
	       "  -w, --workdir DIR        working directory inside (created if missing)\n"
	       "  -u, --user UID[:GID]     run COMMAND as this numeric user and group\n"
	       "      --stop-timeout SECS  after forwarding SIGTERM/SIGINT, wait this long before\n"
	       "                           killing the container (default %d)\n"
	       "Confinement (default: Docker's; see CONFINEMENT in veneer-run(1)):\n"
	       "      --cap-add CAP        add a capability (NET_ADMIN, CAP_SYS_TIME, ALL); the\n"
	       "                           default set is CHOWN DAC_OVERRIDE FOWNER FSETID KILL\n"
	       "                           SETGID SETUID SETPCAP SETFCAP NET_BIND_SERVICE NET_RAW\n"
	       "                           SYS_CHROOT MKNOD AUDIT_WRITE\n"
	       "      --cap-drop CAP       drop a capability, or ALL\n"
	       "      --security-opt seccomp=FILE|unconfined\n"
	       "                           another seccomp profile (Docker's JSON format), or "
	       "none\n"
	       "      --security-opt no-new-privileges\n"
	       "                           set-user-ID and file capabilities grant nothing\n"
	       "      --device HOST[:CTR][:rwm]\n"
	       "                           make device HOST usable inside (as CTR, below /dev)\n"
	       "      --mask PATH          hide PATH inside (an empty read-only directory, or\n"
	       "                           /dev/null for a file); repeatable\n"
	       "      --privileged         all capabilities, no seccomp filter, every device,\n"
	       "                           /proc/sys and /sys writable, nothing masked\n"
	       "State:\n"
	       "      --state-dir DIR      default %s (rootless: $XDG_RUNTIME_DIR/veneer,\n"
	       "                           else /tmp/veneer-UID)\n"
	       "      --name ID            container ID (default: 12 random hex digits)\n"
	       "      --list               print the state of every container as a JSON array\n"
	       "      --inspect ID         print one container's state as JSON\n"
	       "      --cleanup            remove what a killed veneer-run left behind\n"
	       "Helpers (default: next to veneer-run in the build tree, then $PATH):\n"
	       "      --unionfs PATH       veneer-unionfs binary (or $VENEER_UNIONFS)\n"
	       "      --procfs PATH        veneer-procfs binary (or $VENEER_PROCFS)\n"
	       "  -d, --debug              log every step\n"
	       "  -h, --help               this text\n"
	       "  -V, --version            print the version\n"
	       "\n"
	       "Exit status: COMMAND's status (128+N when killed by signal N), or\n"
	       "  121  bad command line: unknown option, bad value, missing COMMAND\n"
	       "  122  a layer, --upper, volume, --procfs-mount or state path does not exist\n"
	       "       or is unusable; a volume target through a symbolic link of the image\n"
	       "  123  no permission (state directory, rootless limits, -u in rootless mode)\n"
	       "  124  --inspect: no such container\n"
	       "  125  setting the container up failed (mount, cgroup, helper daemon)\n"
	       "  126  COMMAND cannot be executed\n"
	       "  127  COMMAND not found\n"
	       "Bad input (121-124, 126, 127 found in the layers) is reported before anything\n"
	       "is created.\n",
	       VR_DEFAULT_PROCFS_MOUNT, VR_DEFAULT_STOP_TIMEOUT, VR_DEFAULT_STATE_DIR);
}

static int vr_usage_error(const char *fmt, ...) VC_PRINTF(1, 2);
static int vr_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "veneer-run: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'veneer-run --help'.\n");
	return VR_EXIT_USAGE;
}

/* An absolute, normalised form of a user-given path (relative ones against the cwd). */
static char *vr_absolute(const char *p)
{
	g_autofree char *cwd = NULL;
	g_autofree char *joined = NULL;

	if (p[0] == '/')
		return vc_path_normalize(p);
	cwd = g_get_current_dir();
	joined = g_build_filename(cwd, p, NULL);
	return vc_path_normalize(joined);
}

static int vr_parse_user(const char *s, struct vr_config *cfg)
{
	g_auto(GStrv) parts = g_strsplit(s, ":", 3);
	unsigned v;

	if (!parts[0] || g_strv_length(parts) > 2)
		return -EINVAL;
	if (vc_parse_uint(parts[0], &v) < 0 || v == UINT_MAX)
		return -EINVAL;
	cfg->uid = v;
	cfg->have_user = true;
	if (parts[1]) {
		if (vc_parse_uint(parts[1], &v) < 0 || v == UINT_MAX)
			return -EINVAL;
		cfg->gid = v;
		cfg->have_gid = true;
	}
	return 0;
}

static bool vr_hostname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return false;
	return true;
}

static long vr_online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? n : 1;
}

static int vr_parse_cpus(const char *s, struct vr_config *cfg)
{
	uint64_t milli;

	if (vc_parse_decimal_scaled(s, 1000, &milli) < 0 || milli < 10 ||
	    milli > (uint64_t)vr_online_cpus() * 1000)
		return -EINVAL;
	cfg->limits.cpu_milli = milli;
	cfg->limits.cpu_period = 100000;
	return 0;
}

static int vr_parse_cpuset(const char *s, struct vr_config *cfg)
{
	g_autoptr(GArray) cpus = NULL;
	g_autoptr(GArray) online = NULL;
	g_autofree char *text = NULL;

	if (vc_parse_cpulist(s, &cpus) < 0 || cpus->len == 0)
		return -EINVAL;
	if (g_file_get_contents("/sys/devices/system/cpu/online", &text, NULL, NULL) &&
	    vc_parse_cpulist(g_strstrip(text), &online) == 0) {
		for (guint i = 0; i < cpus->len; i++) {
			bool found = false;

			for (guint j = 0; j < online->len; j++)
				if (g_array_index(online, guint, j) ==
				    g_array_index(cpus, guint, i))
					found = true;
			if (!found)
				return -ERANGE;
		}
	}
	cfg->limits.cpuset_cpus = vc_format_cpulist((const guint *)cpus->data, cpus->len);
	return 0;
}

/* Parse argv into cfg; returns 0, or an exit code after printing the one message. */
static int vr_parse_args(int argc, char **argv, struct vr_config *cfg)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hVde:w:u:v:", vr_options, NULL)) != -1) {
		const char *bad = argv[optind - 1];
		uint64_t u;

		switch (c) {
		case 'h':
			vr_help();
			exit(0);
		case 'V':
			printf("veneer-run %s\n", VENEER_VERSION);
			exit(0);
		case 'd':
			vc_log_set_level(LOG_DEBUG);
			break;
		case VR_OPT_LAYERS: {
			g_autoptr(GPtrArray) parts = NULL;

			if (vc_split_escaped(optarg, ':', &parts) < 0 || parts->len == 0)
				return vr_usage_error("bad --layers list '%s'", optarg);
			g_ptr_array_set_size(cfg->layers, 0);
			for (guint i = 0; i < parts->len; i++)
				g_ptr_array_add(cfg->layers, vr_absolute(parts->pdata[i]));
			cfg->default_layers = false;
			break;
		}
		case VR_OPT_UPPER:
			g_free(cfg->upper);
			cfg->upper = vr_absolute(optarg);
			break;
		case VR_OPT_KEEP:
			cfg->keep = true;
			break;
		case VR_OPT_MEMORY:
			if (vc_parse_size(optarg, &u) < 0 || u < (1 << 20))
				return vr_usage_error("bad size '%s' for --memory (e.g. 256M, at "
						      "least 1M)",
						      optarg);
			cfg->limits.memory = u;
			break;
		case VR_OPT_CPUS:
			if (vr_parse_cpus(optarg, cfg) < 0)
				return vr_usage_error(
					"bad value '%s' for --cpus (a number from 0.01 "
					"to %ld)",
					optarg, vr_online_cpus());
			break;
		case VR_OPT_CPUSET:
			if (vr_parse_cpuset(optarg, cfg) < 0)
				return vr_usage_error(
					"bad --cpuset-cpus '%s' (a list of online CPUs "
					"such as 0 or 0-1)",
					optarg);
			break;
		case VR_OPT_PIDS:
			if (vc_parse_u64(optarg, &u) < 0 || u == 0 || u > INT32_MAX)
				return vr_usage_error("bad --pids-limit '%s' (a positive number)",
						      optarg);
			cfg->limits.pids = u;
			break;
		case VR_OPT_IGNORE_LIMITS:
			cfg->ignore_limits = true;
			break;
		case VR_OPT_NO_PROCFS:
			cfg->no_procfs = true;
			break;
		case VR_OPT_PROCFS_MOUNT:
			g_free(cfg->procfs_mount);
			cfg->procfs_mount = vr_absolute(optarg);
			break;
		case VR_OPT_HOSTNAME:
			if (!vr_hostname_valid(optarg))
				return vr_usage_error("bad --hostname '%s' (1-64 letters, digits, "
						      "'-', '.', '_')",
						      optarg);
			g_free(cfg->hostname);
			cfg->hostname = g_strdup(optarg);
			break;
		case VR_OPT_NET:
			if (strcmp(optarg, "none") == 0)
				cfg->net = VR_NET_NONE;
			else if (strcmp(optarg, "host") == 0)
				cfg->net = VR_NET_HOST;
			else
				return vr_usage_error("bad --net '%s' (none or host)", optarg);
			break;
		case VR_OPT_ROOTLESS:
			cfg->rootless = true;
			break;
		case 'e':
			if (optarg[0] == '=' || optarg[0] == '\0')
				return vr_usage_error("bad -e '%s' (KEY=VALUE or KEY)", optarg);
			g_ptr_array_add(cfg->env, g_strdup(optarg));
			break;
		case 'w':
			if (optarg[0] != '/')
				return vr_usage_error("bad -w '%s' (an absolute path inside the "
						      "container)",
						      optarg);
			g_free(cfg->workdir);
			cfg->workdir = vc_path_normalize(optarg);
			break;
		case 'u':
			if (vr_parse_user(optarg, cfg) < 0)
				return vr_usage_error("bad -u '%s' (numeric UID[:GID])", optarg);
			break;
		case 'v': {
			struct vr_volume *v;

			if (vr_volume_parse(optarg, &v) < 0)
				return vr_usage_error(
					"bad -v '%s' (absolute HOST:CTR[:ro|:nocopy], "
					"\\: for a ':' in a path)",
					optarg);
			g_ptr_array_add(cfg->volumes, v);
			break;
		}
		case VR_OPT_MOUNT: {
			g_autofree char *err = NULL;
			struct vr_volume *v;

			if (vr_mount_parse(optarg, &v, &err) < 0)
				return vr_usage_error("bad --mount '%s': %s", optarg, err);
			g_ptr_array_add(cfg->volumes, v);
			break;
		}
		case VR_OPT_STATE_DIR:
			g_free(cfg->state_dir);
			cfg->state_dir = vr_absolute(optarg);
			break;
		case VR_OPT_NAME:
			if (!vr_state_name_valid(optarg))
				return vr_usage_error("bad --name '%s' (1-64 letters, digits, '-', "
						      "'_', '.'; not starting with '.')",
						      optarg);
			g_free(cfg->name);
			cfg->name = g_strdup(optarg);
			break;
		case VR_OPT_UNIONFS:
			g_free(cfg->unionfs_bin);
			cfg->unionfs_bin = g_strdup(optarg);
			break;
		case VR_OPT_PROCFS:
			g_free(cfg->procfs_bin);
			cfg->procfs_bin = g_strdup(optarg);
			break;
		case VR_OPT_STOP_TIMEOUT: {
			unsigned t;

			if (vc_parse_uint(optarg, &t) < 0 || t > 3600)
				return vr_usage_error("bad --stop-timeout '%s' (0-3600 seconds)",
						      optarg);
			cfg->stop_timeout = t;
			break;
		}
		case VR_OPT_LIST:
			cfg->action = VR_ACTION_LIST;
			break;
		case VR_OPT_INSPECT:
			cfg->action = VR_ACTION_INSPECT;
			g_free(cfg->inspect_id);
			cfg->inspect_id = g_strdup(optarg);
			break;
		case VR_OPT_CLEANUP:
			cfg->action = VR_ACTION_CLEANUP;
			break;
		case VR_OPT_CAP_ADD:
		case VR_OPT_CAP_DROP:
		case VR_OPT_PRIVILEGED:
		case VR_OPT_SECURITY_OPT:
		case VR_OPT_DEVICE:
		case VR_OPT_MASK: {
			g_autofree char *err = NULL;

			if (vr_security_option(cfg, c, optarg, &err) < 0)
				return vr_usage_error("%s", err);
			break;
		}
		case ':':
			return vr_usage_error("option '%s' needs a value", bad);
		default:
			if (optopt && optopt < 0x100 && bad[0] == '-' && bad[1] != '-') {
				char o[3] = {'-', (char)optopt, '\0'};

				return vr_usage_error("unknown option '%s'", o);
			}
			if (strchr(bad, '=') && bad[0] == '-' && bad[1] == '-')
				return vr_usage_error("unknown option or bad use of '%s'", bad);
			if (optopt)
				return vr_usage_error("option '%s' needs a value", bad);
			return vr_usage_error("unknown option '%s'", bad);
		}
	}
	if (cfg->action == VR_ACTION_RUN) {
		if (optind >= argc)
			return vr_usage_error("%s", "no COMMAND given");
		cfg->argv = argv + optind;
	} else if (optind < argc) {
		return vr_usage_error("unexpected argument '%s'", argv[optind]);
	}
	return 0;
}

static bool vr_is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Nearest existing ancestor of p must let us create it. */
static int vr_check_creatable(const char *p)
{
	g_autofree char *cur = g_strdup(p);

	for (;;) {
		struct stat st;

		if (stat(cur, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return -ENOTDIR;
			return access(cur, W_OK | X_OK) == 0 ? 0 : -EACCES;
		}
		if (errno != ENOENT)
			return -errno;
		char *slash = strrchr(cur, '/');
		if (!slash || slash == cur)
			return access("/", W_OK) == 0 ? 0 : -EACCES;
		*slash = '\0';
	}
}

/* Every check on a run's input that needs the file system; nothing is created here. */
static int vr_validate(struct vr_config *cfg)
{
	bool cg_usable = true;
	int r;

	for (guint i = 0; i < cfg->layers->len; i++) {
		const char *l = cfg->layers->pdata[i];

		if (!vr_is_dir(l)) {
			fprintf(stderr,
				"veneer-run: layer '%s' does not exist or is not a directory\n", l);
			return VR_EXIT_PATH;
		}
	}
	{
		g_autofree char *err = NULL;

		r = vr_security_validate(cfg, &err);
		if (r != 0) {
			fprintf(stderr, "veneer-run: %s\n", err);
			return r;
		}
	}
	if (cfg->upper) {
		struct stat st;

		if (stat(cfg->upper, &st) == 0 ? !S_ISDIR(st.st_mode)
					       : vr_check_creatable(cfg->upper) < 0) {
			fprintf(stderr,
				"veneer-run: --upper '%s' is not a directory and cannot be "
				"created\n",
				cfg->upper);
			return VR_EXIT_PATH;
		}
		if (access(cfg->upper, F_OK) == 0 && access(cfg->upper, W_OK | X_OK) < 0) {
			fprintf(stderr, "veneer-run: no permission to write --upper '%s'\n",
				cfg->upper);
			return VR_EXIT_PERM;
		}
		if (access(cfg->upper, F_OK) == 0) {
			r = vr_lock_upper(cfg->upper, &cfg->upper_lock);
			if (r == -EWOULDBLOCK) {
				fprintf(stderr,
					"veneer-run: --upper '%s' is in use by another "
					"container\n",
					cfg->upper);
				return VR_EXIT_PATH;
			}
		}
	}
	for (guint i = 0; i < cfg->volumes->len; i++) {
		struct vr_volume *v = cfg->volumes->pdata[i];

		if (v->must_exist && access(v->host, F_OK) < 0) {
			fprintf(stderr, "veneer-run: --mount source '%s' does not exist\n",
				v->host);
			return VR_EXIT_PATH;
		}
		if (access(v->host, F_OK) < 0 && vr_check_creatable(v->host) < 0) {
			fprintf(stderr,
				"veneer-run: volume source '%s' does not exist and cannot be "
				"created\n",
				v->host);
			return VR_EXIT_PATH;
		}
	}
	r = vr_volumes_check_targets(cfg);
	if (r != 0)
		return r;
	if (cfg->procfs_mount && cfg->procfs_mount[0] != '/') {
		fprintf(stderr, "veneer-run: bad --procfs-mount '%s'\n", cfg->procfs_mount);
		return VR_EXIT_USAGE;
	}
	if (!cfg->no_procfs) {
		struct stat st;

		/* A running instance is a directory too; a file here would fail only at run time.
		 */
		if (stat(cfg->procfs_mount, &st) == 0
			    ? !S_ISDIR(st.st_mode)
			    : !cfg->rootless && vr_check_creatable(cfg->procfs_mount) < 0) {
			fprintf(stderr,
				"veneer-run: --procfs-mount '%s' is not a directory and cannot be "
				"created\n",
				cfg->procfs_mount);
			return VR_EXIT_PATH;
		}
	}
	r = vr_check_creatable(cfg->state_dir);
	if (r == -ENOTDIR) {
		fprintf(stderr, "veneer-run: state directory '%s' is not a directory\n",
			cfg->state_dir);
		return VR_EXIT_PATH;
	}
	if (r < 0) {
		fprintf(stderr,
			"veneer-run: no permission to create containers in state directory '%s'\n",
			cfg->state_dir);
		return VR_EXIT_PERM;
	}
	if (cfg->name) {
		g_autofree char *d = g_build_filename(cfg->state_dir, cfg->name, NULL);

		if (access(d, F_OK) == 0) {
			fprintf(stderr,
				"veneer-run: a container named '%s' already exists in '%s'\n",
				cfg->name, cfg->state_dir);
			return VR_EXIT_USAGE;
		}
	}
	if (cfg->rootless && cfg->have_user &&
	    (cfg->uid != 0 || (cfg->have_gid && cfg->gid != 0))) {
		fprintf(stderr,
			"veneer-run: -u %u: in rootless mode only the caller is mapped "
			"(as uid 0) inside the container\n",
			(unsigned)cfg->uid);
		return VR_EXIT_PERM;
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0) {
		/* Rootless, the union daemon mounts from inside the user namespace itself. */
		fprintf(stderr, "veneer-run: cannot use /dev/fuse: %s%s\n", strerror(errno),
			cfg->rootless ? " (rootless mode needs read-write access to it, "
					"crw-rw-rw- as Debian ships it)"
				      : "");
		return VR_EXIT_PERM;
	}
	r = vr_cgroup_check(cfg, &cg_usable);
	if (r < 0)
		return VR_EXIT_SETUP;
	if (!cg_usable) {
		const char *what = cfg->limits.memory	     ? "--memory"
				   : cfg->limits.cpu_milli   ? "--cpus"
				   : cfg->limits.cpuset_cpus ? "--cpuset-cpus"
							     : "--pids-limit";

		if (!cfg->ignore_limits) {
			fprintf(stderr,
				"veneer-run: %s cannot be applied: no writable, delegated "
				"cgroup for this user (rootless); use --ignore-limits to run "
				"without the limits\n",
				what);
			return VR_EXIT_PERM;
		}
		if (cfg->limits.memory)
			log_warning(
				"--memory is NOT applied: no writable cgroup (--ignore-limits)");
		if (cfg->limits.cpu_milli)
			log_warning("--cpus is NOT applied: no writable cgroup (--ignore-limits)");
		if (cfg->limits.cpuset_cpus)
			log_warning("--cpuset-cpus is NOT applied: no writable cgroup "
				    "(--ignore-limits)");
		if (cfg->limits.pids)
			log_warning("--pids-limit is NOT applied: no writable cgroup "
				    "(--ignore-limits)");
		cfg->limits.memory = cfg->limits.cpu_milli = cfg->limits.pids = 0;
		g_clear_pointer(&cfg->limits.cpuset_cpus, g_free);
	}
	r = vr_find_helper("veneer-unionfs", "VENEER_UNIONFS", cfg->unionfs_bin, &cfg->unionfs_bin);
	if (r == -EACCES) {
		fprintf(stderr,
			"veneer-run: veneer-unionfs '%s' (--unionfs or $VENEER_UNIONFS) is not "
			"executable\n",
			cfg->unionfs_bin);
		return VR_EXIT_SETUP;
	}
	if (r < 0) {
		fprintf(stderr,
			"veneer-run: veneer-unionfs not found (next to veneer-run, in $PATH, "
			"--unionfs or $VENEER_UNIONFS)\n");
		return VR_EXIT_SETUP;
	}
	if (!cfg->no_procfs) {
		r = vr_find_helper("veneer-procfs", "VENEER_PROCFS", cfg->procfs_bin,
				   &cfg->procfs_bin);
		/* Only needed when no instance runs yet (rootless cannot start one anyway). */
		if (r < 0 && !cfg->rootless && !vr_procfs_running(cfg)) {
			if (r == -EACCES)
				fprintf(stderr,
					"veneer-run: veneer-procfs '%s' (--procfs or "
					"$VENEER_PROCFS) is not executable and none runs at '%s'; "
					"--no-procfs runs without it\n",
					cfg->procfs_bin, cfg->procfs_mount);
			else
				fprintf(stderr,
					"veneer-run: veneer-procfs not found (next to veneer-run, "
					"in $PATH, --procfs or $VENEER_PROCFS) and none runs at "
					"'%s'; --no-procfs runs without it\n",
					cfg->procfs_mount);
			return VR_EXIT_SETUP;
		}
		if (r < 0)
			g_clear_pointer(&cfg->procfs_bin, g_free);
	}
	r = vr_lookup_command(cfg, NULL);
	if (r != 0)
		return r;
	return 0;
}

static void vr_config_init(struct vr_config *cfg)
{
	*cfg = (struct vr_config){
		.layers = g_ptr_array_new_with_free_func(g_free),
		.default_layers = true,
		.env = g_ptr_array_new_with_free_func(g_free),
		.volumes = g_ptr_array_new_with_free_func((GDestroyNotify)vr_volume_free),
		.net = VR_NET_NONE,
		.stop_timeout = VR_DEFAULT_STOP_TIMEOUT,
		.upper_lock = -1,
	};
	vr_security_init(&cfg->sec);
}

static void vr_config_done(struct vr_config *cfg)
{
	g_ptr_array_unref(cfg->layers);
	g_ptr_array_unref(cfg->env);
	g_ptr_array_unref(cfg->volumes);
	g_free(cfg->inspect_id);
	g_free(cfg->upper);
	if (cfg->upper_lock >= 0)
		close(cfg->upper_lock);
	g_free(cfg->limits.cpuset_cpus);
	g_free(cfg->procfs_mount);
	g_free(cfg->hostname);
	g_free(cfg->workdir);
	g_free(cfg->state_dir);
	g_free(cfg->name);
	g_free(cfg->unionfs_bin);
	g_free(cfg->procfs_bin);
	vr_security_done(&cfg->sec);
}

static char *vr_default_state_dir(bool rootless)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (!rootless || geteuid() == 0)
		return g_strdup(VR_DEFAULT_STATE_DIR);
	if (xdg && xdg[0] == '/')
		return g_build_filename(xdg, "veneer", NULL);
	return g_strdup_printf("/tmp/veneer-%u", (unsigned)geteuid());
}

/* The argument strings as the kernel laid them out, which PID 1 blanks (init.c). */
static void vr_argv_area(int argc, char **argv, struct vr_config *cfg)
{
	for (int i = 1; i < argc; i++)
		if (argv[i] != argv[i - 1] + strlen(argv[i - 1]) + 1)
			return; /* not one contiguous area: leave it */
	if (argc > 0) {
		cfg->argv_area = argv[0];
		cfg->argv_area_len =
			(size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
	}
}

int main(int argc, char **argv)
{
	struct vr_config cfg;
	int r;

	vc_log_init("veneer-run");
	vr_config_init(&cfg);
	vr_argv_area(argc, argv, &cfg);
	r = vr_parse_args(argc, argv, &cfg);
	if (r != 0)
		goto out;
	if (geteuid() != 0)
		cfg.rootless = true;
	if (!cfg.state_dir)
		cfg.state_dir = vr_default_state_dir(cfg.rootless);
	if (!cfg.procfs_mount) {
		const char *e = getenv("VENEER_PROCFS_MOUNT");

		cfg.procfs_mount = g_strdup(e && e[0] ? e : VR_DEFAULT_PROCFS_MOUNT);
	}

	switch (cfg.action) {
	case VR_ACTION_LIST:
		r = vr_state_list(cfg.state_dir);
		break;
	case VR_ACTION_INSPECT:
		r = vr_state_inspect(cfg.state_dir, cfg.inspect_id);
		break;
	case VR_ACTION_CLEANUP:
		r = vr_state_cleanup(cfg.state_dir);
		break;
	case VR_ACTION_RUN:
		if (cfg.default_layers)
			g_ptr_array_add(cfg.layers, g_strdup("/"));
		r = vr_validate(&cfg);
		if (r == 0)
			r = vr_run(&cfg);
		break;
	}
out:
	vr_config_done(&cfg);
	return r;
}
