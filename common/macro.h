/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Small macros shared by every veneer module: array sizes, container_of,
 * branch hints and the size of a decimal number as a string.
 */
#pragma once

#include <stddef.h>
#include <limits.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Enough room for any integer of type t in decimal, with sign and NUL. */
#define DECIMAL_STR_MAX(t) \
	(2 + (sizeof(t) <= 1 ? 3 : sizeof(t) <= 2 ? 5 : sizeof(t) <= 4 ? 10 : 20))

#define VC_NORETURN __attribute__((noreturn))
#define VC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define VC_UNUSED __attribute__((unused))
