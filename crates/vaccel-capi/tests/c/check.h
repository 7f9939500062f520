/* SPDX-License-Identifier: Apache-2.0 */
/* The check of the test programs in this directory: prints `ok <name>` or `FAIL <name>` with
 * the place and the condition, and counts both (report `checks` and `failures` at the end;
 * the exit code is the number of failures). */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H

#include <stdio.h>

static int failures;
static int checks;

#define CHECK(name, cond)                                             \
	do {                                                          \
		checks++;                                             \
		if (cond) {                                           \
			printf("ok %s\n", name);                      \
		} else {                                              \
			printf("FAIL %s (%s:%d): %s\n", name, __FILE__, \
			       __LINE__, #cond);                      \
			failures++;                                   \
		}                                                     \
	} while (0)

#endif /* TEST_CHECK_H */
