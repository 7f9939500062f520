/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_ARG_H
#define VACCEL_ARG_H

#include "utils/enum.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an argument's buffer holds. */
typedef enum {
	VACCEL_ARG_RAW = 0,
	VACCEL_ARG_INT8 = 1,
	VACCEL_ARG_INT8_ARRAY = 2,
	VACCEL_ARG_INT16 = 3,
	VACCEL_ARG_INT16_ARRAY = 4,
	VACCEL_ARG_INT32 = 5,
	VACCEL_ARG_INT32_ARRAY = 6,
	VACCEL_ARG_INT64 = 7,
	VACCEL_ARG_INT64_ARRAY = 8,
	VACCEL_ARG_UINT8 = 9,
	VACCEL_ARG_UINT8_ARRAY = 10,
	VACCEL_ARG_UINT16 = 11,
	VACCEL_ARG_UINT16_ARRAY = 12,
	VACCEL_ARG_UINT32 = 13,
	VACCEL_ARG_UINT32_ARRAY = 14,
	VACCEL_ARG_UINT64 = 15,
	VACCEL_ARG_UINT64_ARRAY = 16,
	VACCEL_ARG_FLOAT32 = 17,
	VACCEL_ARG_FLOAT32_ARRAY = 18,
	VACCEL_ARG_FLOAT64 = 19,
	VACCEL_ARG_FLOAT64_ARRAY = 20,
	VACCEL_ARG_BOOL = 21,
	VACCEL_ARG_BOOL_ARRAY = 22,
	VACCEL_ARG_CHAR = 23,
	VACCEL_ARG_CHAR_ARRAY = 24,
	VACCEL_ARG_UCHAR = 25,
	VACCEL_ARG_UCHAR_ARRAY = 26,
	VACCEL_ARG_STRING = 27,
	VACCEL_ARG_BUFFER = 28,
	VACCEL_ARG_CUSTOM = 29,
	VACCEL_ARG_MAX = 30
} vaccel_arg_type_t;

#define VACCEL_ARG_TYPE_LIST_(X)                                                        \
	X(VACCEL_ARG, RAW) X(VACCEL_ARG, INT8) X(VACCEL_ARG, INT8_ARRAY)                 \
	X(VACCEL_ARG, INT16) X(VACCEL_ARG, INT16_ARRAY) X(VACCEL_ARG, INT32)              \
	X(VACCEL_ARG, INT32_ARRAY) X(VACCEL_ARG, INT64) X(VACCEL_ARG, INT64_ARRAY)        \
	X(VACCEL_ARG, UINT8) X(VACCEL_ARG, UINT8_ARRAY) X(VACCEL_ARG, UINT16)             \
	X(VACCEL_ARG, UINT16_ARRAY) X(VACCEL_ARG, UINT32) X(VACCEL_ARG, UINT32_ARRAY)     \
	X(VACCEL_ARG, UINT64) X(VACCEL_ARG, UINT64_ARRAY) X(VACCEL_ARG, FLOAT32)          \
	X(VACCEL_ARG, FLOAT32_ARRAY) X(VACCEL_ARG, FLOAT64) X(VACCEL_ARG, FLOAT64_ARRAY)  \
	X(VACCEL_ARG, BOOL) X(VACCEL_ARG, BOOL_ARRAY) X(VACCEL_ARG, CHAR)                 \
	X(VACCEL_ARG, CHAR_ARRAY) X(VACCEL_ARG, UCHAR) X(VACCEL_ARG, UCHAR_ARRAY)         \
	X(VACCEL_ARG, STRING) X(VACCEL_ARG, BUFFER) X(VACCEL_ARG, CUSTOM)
VACCEL_ENUM_STR_FUNCS(vaccel_arg_type, VACCEL_ARG, VACCEL_ARG_TYPE_LIST_)

/* The numeric argument types: X(name, C type, scalar type, array type). */
#define VACCEL_ARG_NUMERIC_TYPES(X)                                     \
	X(int8, int8_t, VACCEL_ARG_INT8, VACCEL_ARG_INT8_ARRAY)         \
	X(int16, int16_t, VACCEL_ARG_INT16, VACCEL_ARG_INT16_ARRAY)     \
	X(int32, int32_t, VACCEL_ARG_INT32, VACCEL_ARG_INT32_ARRAY)     \
	X(int64, int64_t, VACCEL_ARG_INT64, VACCEL_ARG_INT64_ARRAY)     \
	X(uint8, uint8_t, VACCEL_ARG_UINT8, VACCEL_ARG_UINT8_ARRAY)     \
	X(uint16, uint16_t, VACCEL_ARG_UINT16, VACCEL_ARG_UINT16_ARRAY) \
	X(uint32, uint32_t, VACCEL_ARG_UINT32, VACCEL_ARG_UINT32_ARRAY) \
	X(uint64, uint64_t, VACCEL_ARG_UINT64, VACCEL_ARG_UINT64_ARRAY) \
	X(float, float, VACCEL_ARG_FLOAT32, VACCEL_ARG_FLOAT32_ARRAY)   \
	X(double, double, VACCEL_ARG_FLOAT64, VACCEL_ARG_FLOAT64_ARRAY) \
	X(bool, bool, VACCEL_ARG_BOOL, VACCEL_ARG_BOOL_ARRAY)           \
	X(char, char, VACCEL_ARG_CHAR, VACCEL_ARG_CHAR_ARRAY)           \
	X(uchar, unsigned char, VACCEL_ARG_UCHAR, VACCEL_ARG_UCHAR_ARRAY)

/* One argument of an operation. `owned` args hold a malloc'ed `buf` that
 * vaccel_arg_release() frees; other args point at memory the caller keeps alive. */
struct vaccel_arg {
	void *buf;
	size_t size;
	vaccel_arg_type_t type;
	uint32_t custom_type_id; /* for VACCEL_ARG_CUSTOM */
	bool owned;
};

/* Copies `size` bytes of `buf` (zero-filled if buf is NULL) into a new owned buffer. */
int vaccel_arg_init(struct vaccel_arg *arg, const void *buf, size_t size,
		    vaccel_arg_type_t type, uint32_t custom_id);
/* References `buf` (the caller keeps ownership); buf is NULL iff size is 0. */
int vaccel_arg_init_from_buf(struct vaccel_arg *arg, void *buf, size_t size,
			     vaccel_arg_type_t type, uint32_t custom_id);
/* Frees an owned buffer and resets the arg (type becomes VACCEL_ARG_MAX). */
int vaccel_arg_release(struct vaccel_arg *arg);
/* Heap variants; free with vaccel_arg_delete(). */
int vaccel_arg_new(struct vaccel_arg **arg, const void *buf, size_t size,
		   vaccel_arg_type_t type, uint32_t custom_id);
int vaccel_arg_from_buf(struct vaccel_arg **arg, void *buf, size_t size,
			vaccel_arg_type_t type, uint32_t custom_id);
int vaccel_arg_delete(struct vaccel_arg *arg);

/* An argument list with a cursor: add_*() append, get_*() and set_*() read or overwrite the
 * arg at `position` and advance it. Added args reference the caller's memory unless stated. */
struct vaccel_arg_array {
	struct vaccel_arg *args;
	size_t count;
	size_t capacity;
	size_t position;
	bool owned; /* `args` was allocated by the library (and grows) */
};

typedef bool (*vaccel_arg_type_validator_fn)(const void *buf, size_t size,
					     uint32_t custom_id);
/* Allocates (malloc) the serialized form of `data` into *buf / *size. */
typedef int (*vaccel_arg_serializer_fn)(const void *data, size_t data_size,
					uint32_t custom_id, void **buf,
					size_t *size);
typedef int (*vaccel_arg_deserializer_fn)(const void *buf, size_t size,
					  uint32_t custom_id, size_t data_size,
					  void *data);

/* `initial_capacity` 0 means 8. */
int vaccel_arg_array_init(struct vaccel_arg_array *array,
			  size_t initial_capacity);
/* Releases every arg, then frees `args` if owned. */
int vaccel_arg_array_release(struct vaccel_arg_array *array);
int vaccel_arg_array_new(struct vaccel_arg_array **array,
			 size_t initial_capacity);
int vaccel_arg_array_delete(struct vaccel_arg_array *array);
/* Wraps `count` caller-owned args; the array cannot grow (adds fail with VACCEL_ERANGE). */
int vaccel_arg_array_wrap(struct vaccel_arg_array *array,
			  struct vaccel_arg *args, size_t count);
/* Releases every arg and resets count and position, keeping the storage. */
void vaccel_arg_array_clear(struct vaccel_arg_array *array);

int vaccel_arg_array_add_raw(struct vaccel_arg_array *array, void *buf,
			     size_t size);
#define VACCEL_ARG_ARRAY_DECLARE_ADD_(name, ctype, scalar, array_type)       \
	int vaccel_arg_array_add_##name(struct vaccel_arg_array *array,      \
					ctype *value);                       \
	int vaccel_arg_array_add_##name##_array(struct vaccel_arg_array *array, \
						ctype *values, size_t count);
VACCEL_ARG_NUMERIC_TYPES(VACCEL_ARG_ARRAY_DECLARE_ADD_)
int vaccel_arg_array_add_string(struct vaccel_arg_array *array, char *str);
int vaccel_arg_array_add_buffer(struct vaccel_arg_array *array, void *buf,
				size_t size);
int vaccel_arg_array_add_custom(struct vaccel_arg_array *array,
				uint32_t custom_id, void *buf, size_t size,
				vaccel_arg_type_validator_fn validator);
/* The serialized bytes are owned by the array (freed on release). */
int vaccel_arg_array_add_serialized(struct vaccel_arg_array *array,
				    vaccel_arg_type_t type, uint32_t custom_id,
				    const void *data, size_t data_size,
				    vaccel_arg_serializer_fn serializer);
/* `copy` duplicates the buffers (owned by `dest`); otherwise `dest` references them. */
int vaccel_arg_array_add_range(struct vaccel_arg_array *dest,
			       const struct vaccel_arg_array *src,
			       size_t start_idx, size_t count, bool copy);
int vaccel_arg_array_add_remaining(struct vaccel_arg_array *dest,
				   const struct vaccel_arg_array *src,
				   bool copy);
int vaccel_arg_array_add_all(struct vaccel_arg_array *dest,
			     const struct vaccel_arg_array *src, bool copy);

/* Getters return pointers into the array's args (nothing is copied except scalars). */
int vaccel_arg_array_get_raw(struct vaccel_arg_array *array, void **buf,
			     size_t *size);
#define VACCEL_ARG_ARRAY_DECLARE_GET_(name, ctype, scalar, array_type)          \
	int vaccel_arg_array_get_##name(struct vaccel_arg_array *array,         \
					ctype *value);                          \
	int vaccel_arg_array_get_##name##_array(struct vaccel_arg_array *array, \
						ctype **values, size_t *count);
VACCEL_ARG_NUMERIC_TYPES(VACCEL_ARG_ARRAY_DECLARE_GET_)
int vaccel_arg_array_get_string(struct vaccel_arg_array *array, char **str);
int vaccel_arg_array_get_buffer(struct vaccel_arg_array *array, void **buf,
				size_t *size);
int vaccel_arg_array_get_custom(struct vaccel_arg_array *array,
				uint32_t expected_id, void **buf, size_t *size,
				vaccel_arg_type_validator_fn validator);
int vaccel_arg_array_get_serialized(struct vaccel_arg_array *array,
				    vaccel_arg_type_t expected_type,
				    uint32_t expected_custom_id, void *data,
				    size_t expected_size,
				    vaccel_arg_deserializer_fn deserializer);

/* Setters copy into the existing arg's buffer (type-checked, size-checked). */
int vaccel_arg_array_set_raw(struct vaccel_arg_array *array, void *buf,
			     size_t size);
#define VACCEL_ARG_ARRAY_DECLARE_SET_(name, ctype, scalar, array_type)          \
	int vaccel_arg_array_set_##name(struct vaccel_arg_array *array,         \
					ctype *value);                          \
	int vaccel_arg_array_set_##name##_array(struct vaccel_arg_array *array, \
						ctype *values, size_t count);
VACCEL_ARG_NUMERIC_TYPES(VACCEL_ARG_ARRAY_DECLARE_SET_)
int vaccel_arg_array_set_string(struct vaccel_arg_array *array, char *str);
int vaccel_arg_array_set_buffer(struct vaccel_arg_array *array, void *buf,
				size_t size);
int vaccel_arg_array_set_custom(struct vaccel_arg_array *array,
				uint32_t expected_id, void *buf, size_t size,
				vaccel_arg_type_validator_fn validator);
int vaccel_arg_array_set_serialized(struct vaccel_arg_array *array,
				    vaccel_arg_type_t expected_type,
				    uint32_t expected_custom_id, void *data,
				    size_t data_size,
				    vaccel_arg_serializer_fn serializer);

/* Points *args at the args from `position` on (does not advance); NULL/0 if none. */
int vaccel_arg_array_get_remaining(struct vaccel_arg_array *array,
				   struct vaccel_arg **args, size_t *count);
size_t vaccel_arg_array_remaining_count(const struct vaccel_arg_array *array);
size_t vaccel_arg_array_position(const struct vaccel_arg_array *array);
/* Clamped to the count. */
void vaccel_arg_array_set_position(struct vaccel_arg_array *array,
				   size_t position);
void vaccel_arg_array_reset_position(struct vaccel_arg_array *array);
size_t vaccel_arg_array_count(const struct vaccel_arg_array *array);
struct vaccel_arg *vaccel_arg_array_raw(struct vaccel_arg_array *array);

/* Deprecated list API. */
struct vaccel_arg_list {
	uint32_t size;
	struct vaccel_arg *list;
	int curr_idx;
	int *idcs_allocated_space;
};

#if defined(__GNUC__)
#define VACCEL_ARG_DEPRECATED_ \
	__attribute__((deprecated("The function will be removed in a future release")))
#else
#define VACCEL_ARG_DEPRECATED_
#endif

VACCEL_ARG_DEPRECATED_ struct vaccel_arg_list *vaccel_args_init(uint32_t size);
VACCEL_ARG_DEPRECATED_ int vaccel_add_serial_arg(struct vaccel_arg_list *args,
						 void *buf, uint32_t size);
VACCEL_ARG_DEPRECATED_ int
vaccel_add_nonserial_arg(struct vaccel_arg_list *args, void *buf, uint32_t type,
			 void *(*serializer)(void *, uint32_t *));
VACCEL_ARG_DEPRECATED_ int vaccel_expect_serial_arg(struct vaccel_arg_list *args,
						    void *buf, uint32_t size);
VACCEL_ARG_DEPRECATED_ int
vaccel_expect_nonserial_arg(struct vaccel_arg_list *args, uint32_t expected_size);
VACCEL_ARG_DEPRECATED_ void *vaccel_extract_serial_arg(struct vaccel_arg *args,
						       int idx);
VACCEL_ARG_DEPRECATED_ void *
vaccel_extract_nonserial_arg(struct vaccel_arg *args, int idx,
			     void *(*deserializer)(void *, uint32_t));
VACCEL_ARG_DEPRECATED_ int vaccel_write_serial_arg(struct vaccel_arg *args,
						   int idx, void *buf);
VACCEL_ARG_DEPRECATED_ int
vaccel_write_nonserial_arg(struct vaccel_arg *args, int idx, void *buf,
			   void *(*serializer)(void *, uint32_t *));
VACCEL_ARG_DEPRECATED_ int vaccel_delete_args(struct vaccel_arg_list *args);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_ARG_H */
