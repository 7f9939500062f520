/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_RESOURCE_H
#define VACCEL_RESOURCE_H

#include "blob.h"
#include "id.h"
#include "list.h"
#include "utils/enum.h"
#include "utils/path.h"
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#ifndef __cplusplus
#include <stdatomic.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
	VACCEL_RESOURCE_LIB = 0,
	VACCEL_RESOURCE_DATA = 1,
	VACCEL_RESOURCE_MODEL = 2,
	VACCEL_RESOURCE_MAX = 3
} vaccel_resource_type_t;

#define VACCEL_RESOURCE_TYPE_LIST_(X) \
	X(VACCEL_RESOURCE, LIB) X(VACCEL_RESOURCE, DATA) X(VACCEL_RESOURCE, MODEL)
VACCEL_ENUM_STR_FUNCS(vaccel_resource_type, VACCEL_RESOURCE,
		      VACCEL_RESOURCE_TYPE_LIST_)

/* A resource. The struct is caller memory; every pointer field is filled and owned by the
 * library (read-only for applications; plugins may set `remote_id` and `plugin_priv`, and may
 * write into `blobs[i]->data`). `blobs` describes the files or buffers the resource is made
 * of: for path resources they appear at the first registration with a session. */
struct vaccel_resource {
	vaccel_id_t id;
	vaccel_id_t remote_id;
	vaccel_resource_type_t type;
	vaccel_path_type_t path_type;
	char **paths;
	size_t nr_paths;
	char *rundir;
	struct vaccel_blob **blobs;
	size_t nr_blobs;
	vaccel_list_entry_t entry;
	vaccel_list_t sessions;
	pthread_mutex_t sessions_lock;
	/* The number of sessions registered with. Spelled as upstream does, alone on its line
	 * inside the struct: binding generators (cffi) turn the lines naming atomic_ types
	 * into opaque members. */
#ifdef __cplusplus
	unsigned int refcount; /* C11 atomic_uint's size and alignment */
#else
	atomic_uint refcount;
#endif
	void *plugin_priv;
};

/* Lookups of live resources (EPERM if not initialised, ENOENT if none). The array of
 * vaccel_resource_get_all_by_type() is malloc'ed; the caller frees it (not the resources). */
int vaccel_resource_get_by_id(struct vaccel_resource **res, vaccel_id_t id);
int vaccel_resource_get_by_type(struct vaccel_resource **res,
				vaccel_resource_type_t type);
int vaccel_resource_get_all_by_type(struct vaccel_resource ***res,
				    size_t *nr_found,
				    vaccel_resource_type_t type);
/* Number of sessions registered with; -VACCEL_EINVAL for an invalid resource. */
long int vaccel_resource_refcount(const struct vaccel_resource *res);

/* A resource from a local file, a local directory or an http(s) URL. */
int vaccel_resource_init(struct vaccel_resource *res, const char *path,
			 vaccel_resource_type_t type);
int vaccel_resource_init_multi(struct vaccel_resource *res, const char **paths,
			       size_t nr_paths, vaccel_resource_type_t type);
/* A resource from bytes: with `mem_only` the bytes are kept in memory, otherwise written to a
 * file in the resource's directory. Either way they are copied (vaccel-rs: upstream's
 * mem_only references the caller's buffer), so the caller may free `buf` at once. */
int vaccel_resource_init_from_buf(struct vaccel_resource *res, const void *buf,
				  size_t nr_bytes, vaccel_resource_type_t type,
				  const char *filename, bool mem_only);
/* A resource from blobs: FILE blobs refer to the same file, BUFFER blobs are copied, MAPPED
 * blobs are copied into the resource's directory. The caller keeps its blobs. */
int vaccel_resource_init_from_blobs(struct vaccel_resource *res,
				    const struct vaccel_blob **blobs,
				    size_t nr_blobs,
				    vaccel_resource_type_t type);
/* Unregisters from every session and frees everything the library made for it. */
int vaccel_resource_release(struct vaccel_resource *res);
/* Heap variants; free with vaccel_resource_delete(). */
int vaccel_resource_new(struct vaccel_resource **res, const char *path,
			vaccel_resource_type_t type);
int vaccel_resource_multi_new(struct vaccel_resource **res, const char **paths,
			      size_t nr_paths, vaccel_resource_type_t type);
int vaccel_resource_from_buf(struct vaccel_resource **res, const void *buf,
			     size_t nr_bytes, vaccel_resource_type_t type,
			     const char *filename, bool mem_only);
int vaccel_resource_from_blobs(struct vaccel_resource **res,
			       const struct vaccel_blob **blobs,
			       size_t nr_blobs, vaccel_resource_type_t type);
int vaccel_resource_delete(struct vaccel_resource *res);

struct vaccel_session;

int vaccel_resource_register(struct vaccel_resource *res,
			     struct vaccel_session *sess);
int vaccel_resource_unregister(struct vaccel_resource *res,
			       struct vaccel_session *sess);
/* Refreshes a buffer resource's bytes from the session's plugin. */
int vaccel_resource_sync(struct vaccel_resource *res,
			 struct vaccel_session *sess);
/* The directory of a directory resource: malloc'ed into *alloc_path when `alloc_path` is
 * non-NULL (the caller frees it), else copied into `out_path` (EINVAL if too small). */
int vaccel_resource_directory(struct vaccel_resource *res, char *out_path,
			      size_t out_path_size, char **alloc_path);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_RESOURCE_H */
