/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_UTILS_PATH_H
#define VACCEL_UTILS_PATH_H

#include "enum.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a resource's paths are read. */
typedef enum {
	VACCEL_PATH_LOCAL_FILE = 0,
	VACCEL_PATH_LOCAL_DIR = 1,
	VACCEL_PATH_REMOTE_FILE = 2,
	VACCEL_PATH_MAX = 3
} vaccel_path_type_t;

#define VACCEL_PATH_TYPE_LIST_(X) \
	X(VACCEL_PATH, LOCAL_FILE) X(VACCEL_PATH, LOCAL_DIR) X(VACCEL_PATH, REMOTE_FILE)
VACCEL_ENUM_STR_FUNCS(vaccel_path_type, VACCEL_PATH, VACCEL_PATH_TYPE_LIST_)

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_UTILS_PATH_H */
