/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Safe parsing of numbers, sizes and the text formats of /proc and cgroupfs.
 * Call sites never use atoi/strtol directly: these reject junk, overflow and
 * empty input with -EINVAL/-ERANGE.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

int vc_parse_u64(const char *s, uint64_t *ret);
int vc_parse_i64(const char *s, int64_t *ret);
int vc_parse_uint(const char *s, unsigned *ret);
/* "max" (cgroup2) -> UINT64_MAX, else a decimal number. */
int vc_parse_u64_or_max(const char *s, uint64_t *ret);
/* "256M", "1g", "4096", "1.5G": binary units (K=1024), optional trailing 'b'/'B'. */
int vc_parse_size(const char *s, uint64_t *ret);
/* A decimal fraction like "0.5" or "2" -> value * scale, rounded. */
int vc_parse_decimal_scaled(const char *s, uint64_t scale, uint64_t *ret);

/*
 * Split a colon-separated list where "\:" is a literal colon and "\\" a
 * backslash (overlayfs' lowerdir syntax). Empty elements are an error.
 */
int vc_split_escaped(const char *s, char sep, GPtrArray **ret);

/*
 * Look up "key value" in text made of lines such as memory.stat ("cache 123")
 * or /proc/meminfo ("MemTotal:     123 kB"): the key ends at ':' or blank, the
 * value is the first number after it. Returns -ENOENT when absent.
 */
int vc_kv_lookup_u64(const char *text, const char *key, uint64_t *ret);

/* A CPU list like "0-3,5,7-8" -> bitmap as a GArray-free boolean set. */
int vc_parse_cpulist(const char *s, GArray **ret); /* ret: sorted guint cpu numbers */
/* Back to the kernel's compact list form. */
char *vc_format_cpulist(const guint *cpus, guint n);
