/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_UTILS_STR_H
#define VACCEL_UTILS_STR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Lowercases `str`. With `alloc_lower` non-NULL the result is malloc'ed into `*alloc_lower`
 * (the caller frees it); otherwise it is written into `lower` (`size` bytes, truncated and
 * NUL-terminated). Returns VACCEL_EINVAL on NULL arguments. */
int vaccel_str_to_lower(const char *str, char *lower, size_t size,
			char **alloc_lower);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_UTILS_STR_H */
