/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-oci-hook's private types: the options, what it reads of the OCI
 * state and the bundle's config.json (oci.c), and the bind step (bind.c) and
 * the CPU affinity step (affinity.c). Prototypes are grouped by file.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VH_DEFAULT_PROCFS_MOUNT "/var/lib/veneer/procfs"
#define VH_DEFAULT_TIMEOUT_MS 2000
/* An annotation of the container: "off" (or false, 0, no) leaves it alone. */
#define VH_ANNOTATION "io.veneer.procfs"
/* The OCI state is a few hundred bytes; a runtime never sends more than this. */
#define VH_STATE_MAX (1 << 20)

struct vh_opts {
	const char *procfs_mount;
	unsigned timeout_ms;
	bool affinity;
	bool log_stderr;
};

/* What the runtime gives a hook on stdin (runtime-spec "state"). */
struct vh_state {
	char *id;
	pid_t pid;
	char *bundle;
	GHashTable *annotations; /* char * -> char *, never NULL */
};

/* What the hook needs of BUNDLE/config.json. */
struct vh_config {
	char *root;	 /* the root filesystem, absolute (as the runtime resolved it) */
	bool mount_ns;	 /* the container has a mount namespace of its own */
	int64_t quota;	 /* linux.resources.cpu.quota, <= 0: none */
	uint64_t period; /* linux.resources.cpu.period, 0: the kernel's default */
	GHashTable *annotations;
};

/* oci.c */
int vh_state_parse(const char *text, size_t len, struct vh_state *ret);
void vh_state_done(struct vh_state *s);
int vh_config_load(const char *bundle, struct vh_config *ret);
void vh_config_done(struct vh_config *c);
bool vh_annotation_off(const char *value);

/* bind.c */
int vh_bind_procfs(const struct vh_opts *o, pid_t pid, const char *root, unsigned *ret_bound);

/* affinity.c */
unsigned vh_cpu_want(int64_t quota, uint64_t period);
int vh_affinity_narrow(pid_t pid, unsigned want, unsigned *ret_threads);
