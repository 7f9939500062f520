/* SPDX-License-Identifier: Apache-2.0 */
/* Reads a whole file into a malloc'd buffer, for the test programs in this directory. */
#ifndef TEST_READ_FILE_H
#define TEST_READ_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <vaccel.h>

static int read_file(const char *path, char **data, size_t *size)
{
	FILE *f = fopen(path, "rb");
	long len;

	if (!f)
		return VACCEL_ENOENT;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return VACCEL_EINVAL;
	}
	*data = malloc((size_t)len);
	if (!*data || fread(*data, 1, (size_t)len, f) != (size_t)len) {
		free(*data);
		fclose(f);
		return VACCEL_EIO;
	}
	fclose(f);
	*size = (size_t)len;
	return VACCEL_OK;
}

#endif /* TEST_READ_FILE_H */
