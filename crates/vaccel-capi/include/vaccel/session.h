/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_SESSION_H
#define VACCEL_SESSION_H

#include "id.h"
#include "list.h"
#include "resource.h"
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef PATH_MAX
#define VACCEL_PATH_MAX_ PATH_MAX
#else
#define VACCEL_PATH_MAX_ 4096
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct vaccel_plugin;

/* A session. The struct is caller memory, filled by vaccel_session_init() and valid until
 * vaccel_session_release(); applications read it, plugins may set `remote_id` and `priv`. */
struct vaccel_session {
	vaccel_id_t id;
	vaccel_id_t remote_id;
	unsigned int hint; /* the flags it was created with */
	bool is_virtio; /* forwards to a remote runtime */
	char rundir[VACCEL_PATH_MAX_];
	vaccel_list_entry_t entry; /* self-linked: vaccel-rs keeps no global list */
	vaccel_list_t resources[VACCEL_RESOURCE_MAX];
	size_t resource_counts[VACCEL_RESOURCE_MAX];
	pthread_mutex_t resources_lock;
	struct vaccel_plugin *plugin; /* owned by the library */
	void *priv;
};

/* Looks a live session up by id. */
int vaccel_session_get_by_id(struct vaccel_session **sess, vaccel_id_t id);
/* `flags`: a vaccel_plugin_type_t hint selecting the plugin (| VACCEL_PLUGIN_REMOTE). */
int vaccel_session_init(struct vaccel_session *sess, uint32_t flags);
/* Unregisters the session's resources (they are not released) and frees the session. */
int vaccel_session_release(struct vaccel_session *sess);
/* Heap variants; free with vaccel_session_delete(). */
int vaccel_session_new(struct vaccel_session **sess, uint32_t flags);
int vaccel_session_delete(struct vaccel_session *sess);
bool vaccel_session_has_resource(struct vaccel_session *sess,
				 struct vaccel_resource *res);
int vaccel_session_resource_by_id(struct vaccel_session *sess,
				  struct vaccel_resource **res, vaccel_id_t id);
int vaccel_session_resource_by_type(struct vaccel_session *sess,
				    struct vaccel_resource **res,
				    vaccel_resource_type_t type);
/* The array is malloc'ed; the caller frees it (not the resources). */
int vaccel_session_resources_by_type(struct vaccel_session *sess,
				     struct vaccel_resource ***resources,
				     size_t *nr_found,
				     vaccel_resource_type_t type);

/* Deprecated. */
int vaccel_session_update(struct vaccel_session *sess, uint32_t flags);
int vaccel_sess_init(struct vaccel_session *sess, uint32_t flags);
int vaccel_sess_update(struct vaccel_session *sess, uint32_t flags);
int vaccel_sess_free(struct vaccel_session *sess);
bool vaccel_sess_has_resource(struct vaccel_session *sess,
			      struct vaccel_resource *res);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_SESSION_H */
