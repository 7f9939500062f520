/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_EXEC_H
#define VACCEL_OPS_EXEC_H

#include "../arg.h"
#include "../resource.h"
#include "../session.h"
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Calls `int fn_symbol(struct vaccel_arg *read, size_t nr_read, struct vaccel_arg *write,
 * size_t nr_write)` of `library` (resolved where the plugin runs). The args are passed in
 * place: outputs are written into the caller's `write` buffers. */
int vaccel_exec(struct vaccel_session *sess, const char *library,
		const char *fn_symbol, struct vaccel_arg *read, size_t nr_read,
		struct vaccel_arg *write, size_t nr_write);
/* Same with a LIB resource registered with `sess` (its last blob is the library). */
int vaccel_exec_with_resource(struct vaccel_session *sess,
			      struct vaccel_resource *resource,
			      const char *fn_symbol, struct vaccel_arg *read,
			      size_t nr_read, struct vaccel_arg *write,
			      size_t nr_write);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_EXEC_H */
