/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Name and path checks that need no I/O: a valid directory entry name, and
 * whether one absolute, normalised path lies inside another.
 */
#pragma once

#include <stdbool.h>

/* A single entry name: not empty, no '/', not "." or "..", at most NAME_MAX bytes. */
bool vc_name_is_valid(const char *name);
/* True when a equals b or lies below it; both absolute and normalised (no "//", ".", ".."). */
bool vc_path_is_inside(const char *a, const char *b);
/* Normalise an absolute path lexically: collapse "//", drop ".", resolve "..". */
char *vc_path_normalize(const char *path);
