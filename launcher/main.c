/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * veneer-run entry point (skeleton: being built under issue #5).
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
			printf("veneer-run %s\n", VENEER_VERSION);
			return 0;
		}
	}
	fprintf(stderr, "veneer-run: not built yet\n");
	return 1;
}
