/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-unionfs entry point (skeleton: being built under issue #3).
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("veneer-unionfs %s\n", VENEER_VERSION);
			return 0;
		}
	}
	fprintf(stderr, "veneer-unionfs: not built yet\n");
	return 1;
}
