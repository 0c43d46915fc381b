/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Logging: one threshold, one target (stderr in the foreground, syslog once a
 * daemon has detached). The *_errno variants take a negative errno, print it
 * as text and return it, so a caller can write `return log_error_errno(r, ...)`.
 */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <syslog.h>
#include "macro.h"

enum vc_log_target {
	VC_LOG_STDERR,
	VC_LOG_SYSLOG,
};

void vc_log_init(const char *ident);
void vc_log_set_level(int level); /* LOG_ERR .. LOG_DEBUG */
int vc_log_get_level(void);
void vc_log_set_target(enum vc_log_target target);
/* Where a detached daemon logs when no syslog socket listens (log.c); g_free() it. */
char *vc_log_fallback_path(const char *ident);
/* Route libfuse's own messages through our logger. */
void vc_log_route_fuse(void);

int vc_log_full(int level, int error, const char *file, int line, const char *func, const char *fmt,
		...) VC_PRINTF(6, 7);

#define vc_log(level, error, ...)                                                              \
	({                                                                                     \
		int _l_ = (level);                                                             \
		vc_log_get_level() >= _l_                                                      \
			? vc_log_full(_l_, (error), __FILE__, __LINE__, __func__, __VA_ARGS__) \
			: -abs(error);                                                         \
	})

#define log_debug(...) vc_log(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) vc_log(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) vc_log(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) vc_log(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) vc_log(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(r, ...) vc_log(LOG_DEBUG, (r), __VA_ARGS__)
#define log_info_errno(r, ...) vc_log(LOG_INFO, (r), __VA_ARGS__)
#define log_notice_errno(r, ...) vc_log(LOG_NOTICE, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) vc_log(LOG_WARNING, (r), __VA_ARGS__)
#define log_error_errno(r, ...) vc_log(LOG_ERR, (r), __VA_ARGS__)
