/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Why a FUSE mount failed: one message naming the cause and the fix (mount-diag.c). */
#pragma once

/* Log why fuse_session_mount() on mountpoint failed; returns the negative errno it names. */
int vc_fuse_mount_diagnose(const char *mountpoint);
