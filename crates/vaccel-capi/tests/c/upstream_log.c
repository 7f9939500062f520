/* SPDX-License-Identifier: Apache-2.0 */
/* What a program built against upstream's installed headers imports from libvaccel.so beyond
 * the API proper: slog_print (every vaccel_<level>() macro of vaccel/log.h expands to slog's)
 * and fs_file_read (upstream's examples read their inputs with it; no installed header declares
 * it, so they declare it themselves, as here).
 *
 *   upstream_log <file>   logs one line per macro, then reads <file> and prints its size */
#include <stdio.h>
#include <stdlib.h>
#include <vaccel.h>

int fs_file_read(const char *path, void **data, size_t *size);

int main(int argc, char **argv)
{
	void *data = NULL;
	size_t size = 0;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s <file>\n", argv[0]);
		return 2;
	}
	vaccel_error("an error line: %d", 1);
	vaccel_warn("a warning line: %s", "two");
	vaccel_info("an info line: %c", '3');
	vaccel_debug("a debug line: %.1f", 4.5);
	vaccel_trace("a trace line");
	vaccel_fatal("a fatal line");

	ret = fs_file_read(argv[1], &data, &size);
	if (ret != VACCEL_OK) {
		fprintf(stderr, "fs_file_read(%s): %d\n", argv[1], ret);
		return 1;
	}
	printf("read %zu bytes\n", size);
	free(data);
	return 0;
}
