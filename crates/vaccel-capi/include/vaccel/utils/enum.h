/* SPDX-License-Identifier: Apache-2.0 */
/* vaccel-rs: enumeration helpers shared by every vAccel header. */
#ifndef VACCEL_UTILS_ENUM_H
#define VACCEL_UTILS_ENUM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Size of a buffer that holds any enum item name. */
#define VACCEL_ENUM_STR_MAX 128

/* Given LIST(X), which expands X(PREFIX, NAME) once per item, defines for the enum `name##_t`:
 *   const char *name##_to_str(v)       -> "PREFIX_NAME" (unknown: "PREFIX_MAX")
 *   const char *name##_to_base_str(v)  -> "NAME"        (unknown: "MAX")
 *   char *name##_name(v, buf, size)    -> lowercase base name written into buf, returns buf
 * The returned strings are static; nothing is allocated. */
#define VACCEL_ENUM_STR_CASE_(prefix, item) \
	case prefix##_##item:               \
		return #prefix "_" #item;
#define VACCEL_ENUM_BASE_STR_CASE_(prefix, item) \
	case prefix##_##item:                    \
		return #item;
#define VACCEL_ENUM_STR_FUNCS(name, prefix, LIST)                                   \
	static inline const char *name##_to_str(name##_t value)                    \
	{                                                                           \
		switch ((int)value) {                                               \
			LIST(VACCEL_ENUM_STR_CASE_)                                  \
		default:                                                            \
			return #prefix "_MAX";                                       \
		}                                                                   \
	}                                                                           \
	static inline const char *name##_to_base_str(name##_t value)               \
	{                                                                           \
		switch ((int)value) {                                               \
			LIST(VACCEL_ENUM_BASE_STR_CASE_)                             \
		default:                                                            \
			return "MAX";                                                \
		}                                                                   \
	}                                                                           \
	static inline char *name##_name(name##_t value, char *buf, size_t size)    \
	{                                                                           \
		const char *base = name##_to_base_str(value);                       \
		size_t i = 0;                                                       \
		if (!buf || !size)                                                  \
			return buf;                                                 \
		for (; base[i] && i + 1 < size; i++) {                              \
			char c = base[i];                                           \
			buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; \
		}                                                                   \
		buf[i] = '\0';                                                      \
		return buf;                                                         \
	}

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_UTILS_ENUM_H */
