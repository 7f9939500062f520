/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OP_H
#define VACCEL_OP_H

#include "list.h"
#include "utils/enum.h"
#include "utils/str.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
	VACCEL_OP_NOOP = 0,
	VACCEL_OP_EXEC = 1,
	VACCEL_OP_EXEC_WITH_RESOURCE = 2,
	VACCEL_OP_IMAGE_CLASSIFY = 3,
	VACCEL_OP_IMAGE_DETECT = 4,
	VACCEL_OP_IMAGE_SEGMENT = 5,
	VACCEL_OP_IMAGE_POSE = 6,
	VACCEL_OP_IMAGE_DEPTH = 7,
	VACCEL_OP_TF_MODEL_LOAD = 8,
	VACCEL_OP_TF_MODEL_UNLOAD = 9,
	VACCEL_OP_TF_MODEL_RUN = 10,
	VACCEL_OP_TFLITE_MODEL_LOAD = 11,
	VACCEL_OP_TFLITE_MODEL_UNLOAD = 12,
	VACCEL_OP_TFLITE_MODEL_RUN = 13,
	VACCEL_OP_TORCH_MODEL_LOAD = 14,
	VACCEL_OP_TORCH_MODEL_RUN = 15,
	VACCEL_OP_TORCH_SGEMM = 16,
	VACCEL_OP_BLAS_SGEMM = 17,
	VACCEL_OP_FPGA_ARRAYCOPY = 18,
	VACCEL_OP_FPGA_MMULT = 19,
	VACCEL_OP_FPGA_PARALLEL = 20,
	VACCEL_OP_FPGA_VECTORADD = 21,
	VACCEL_OP_MINMAX = 22,
	VACCEL_OP_OPENCV = 23,
	VACCEL_OP_MAX = 24
} vaccel_op_type_t;

#define VACCEL_OP_TYPE_LIST_(X)                                                       \
	X(VACCEL_OP, NOOP) X(VACCEL_OP, EXEC) X(VACCEL_OP, EXEC_WITH_RESOURCE)         \
	X(VACCEL_OP, IMAGE_CLASSIFY) X(VACCEL_OP, IMAGE_DETECT)                        \
	X(VACCEL_OP, IMAGE_SEGMENT) X(VACCEL_OP, IMAGE_POSE) X(VACCEL_OP, IMAGE_DEPTH) \
	X(VACCEL_OP, TF_MODEL_LOAD) X(VACCEL_OP, TF_MODEL_UNLOAD)                      \
	X(VACCEL_OP, TF_MODEL_RUN) X(VACCEL_OP, TFLITE_MODEL_LOAD)                     \
	X(VACCEL_OP, TFLITE_MODEL_UNLOAD) X(VACCEL_OP, TFLITE_MODEL_RUN)               \
	X(VACCEL_OP, TORCH_MODEL_LOAD) X(VACCEL_OP, TORCH_MODEL_RUN)                   \
	X(VACCEL_OP, TORCH_SGEMM) X(VACCEL_OP, BLAS_SGEMM)                             \
	X(VACCEL_OP, FPGA_ARRAYCOPY) X(VACCEL_OP, FPGA_MMULT)                          \
	X(VACCEL_OP, FPGA_PARALLEL) X(VACCEL_OP, FPGA_VECTORADD)                       \
	X(VACCEL_OP, MINMAX) X(VACCEL_OP, OPENCV)
VACCEL_ENUM_STR_FUNCS(vaccel_op_type, VACCEL_OP, VACCEL_OP_TYPE_LIST_)

/* The lowercase op name ("image_classify") written into `lower` (`size` bytes). */
static inline char *vaccel_op_type_to_lower(vaccel_op_type_t op_type,
					    char *lower, size_t size)
{
	return vaccel_op_type_name(op_type, lower, size);
}

struct vaccel_plugin;

/* One operation of a plugin: `func` has the signature of the op's API function. */
struct vaccel_op {
	vaccel_op_type_t type;
	void *func;
	struct vaccel_plugin *owner;
};

/* Defined by VACCEL_PLUGIN() in the plugin's own library. */
extern struct vaccel_plugin vaccel_this_plugin;
#define VACCEL_OP_INIT(name, type, func) \
	{ (type), (void *)(func), (&vaccel_this_plugin) }

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OP_H */
