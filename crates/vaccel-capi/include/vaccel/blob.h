/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_BLOB_H
#define VACCEL_BLOB_H

#include "utils/enum.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
	VACCEL_BLOB_FILE = 0, /* a file on disk; data read on demand */
	VACCEL_BLOB_BUFFER = 1, /* bytes in memory */
	VACCEL_BLOB_MAPPED = 2, /* a file whose bytes are mapped in memory */
	VACCEL_BLOB_MAX = 3
} vaccel_blob_type_t;

#define VACCEL_BLOB_TYPE_LIST_(X) \
	X(VACCEL_BLOB, FILE) X(VACCEL_BLOB, BUFFER) X(VACCEL_BLOB, MAPPED)
VACCEL_ENUM_STR_FUNCS(vaccel_blob_type, VACCEL_BLOB, VACCEL_BLOB_TYPE_LIST_)

/* One file or buffer of a resource. `name` is always owned by the blob; `path` and `data`
 * are released with the blob when `path_owned` (the file is deleted) / `data_owned`. */
struct vaccel_blob {
	vaccel_blob_type_t type;
	char *name;
	char *path;
	bool path_owned;
	uint8_t *data;
	bool data_owned;
	size_t size;
};

/* Writes the blob's bytes to `<dir>/<filename>` (a unique name when `randomize` or when the
 * file exists) and maps it: the blob becomes MAPPED and owns the file. */
int vaccel_blob_persist(struct vaccel_blob *blob, const char *dir,
			const char *filename, bool randomize);
/* A FILE blob for an existing regular file (the file is not owned). */
int vaccel_blob_init(struct vaccel_blob *blob, const char *path);
/* A blob from bytes: with `dir` NULL a BUFFER blob (a copy when `own`, else a reference to
 * `buf`); otherwise the bytes are persisted into `dir` (see vaccel_blob_persist()). */
int vaccel_blob_init_from_buf(struct vaccel_blob *blob, const uint8_t *buf,
			      size_t size, bool own, const char *filename,
			      const char *dir, bool randomize);
int vaccel_blob_release(struct vaccel_blob *blob);
/* Heap variants; free with vaccel_blob_delete(). */
int vaccel_blob_new(struct vaccel_blob **blob, const char *path);
int vaccel_blob_from_buf(struct vaccel_blob **blob, const uint8_t *buf,
			 size_t size, bool own, const char *filename,
			 const char *dir, bool randomize);
int vaccel_blob_delete(struct vaccel_blob *blob);
/* Maps a FILE blob's bytes (no-op if already in memory). */
int vaccel_blob_read(struct vaccel_blob *blob);
/* The bytes (read first if needed); NULL on error. Owned by the blob. */
uint8_t *vaccel_blob_data(struct vaccel_blob *blob, size_t *size);
/* The file of FILE and MAPPED blobs, else NULL. Owned by the blob. */
const char *vaccel_blob_path(struct vaccel_blob *blob);
bool vaccel_blob_valid(const struct vaccel_blob *blob);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_BLOB_H */
