/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_TFLITE_H
#define VACCEL_OPS_TFLITE_H

#include "../resource.h"
#include "../session.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* TensorFlow Lite element types (values as TfLiteType). */
enum vaccel_tflite_data_type {
	VACCEL_TFLITE_NOTYPE = 0,
	VACCEL_TFLITE_FLOAT32 = 1,
	VACCEL_TFLITE_INT32 = 2,
	VACCEL_TFLITE_UINT8 = 3,
	VACCEL_TFLITE_INT64 = 4,
	VACCEL_TFLITE_STRING = 5,
	VACCEL_TFLITE_BOOL = 6,
	VACCEL_TFLITE_INT16 = 7,
	VACCEL_TFLITE_COMPLEX64 = 8,
	VACCEL_TFLITE_INT8 = 9,
	VACCEL_TFLITE_FLOAT16 = 10,
	VACCEL_TFLITE_FLOAT64 = 11,
	VACCEL_TFLITE_COMPLEX128 = 12,
	VACCEL_TFLITE_UINT64 = 13,
	VACCEL_TFLITE_RESOURCE = 14,
	VACCEL_TFLITE_VARIANT = 15,
	VACCEL_TFLITE_UINT32 = 16,
	VACCEL_TFLITE_UINT16 = 17,
	VACCEL_TFLITE_INT4 = 18,
};

/* `dims` is owned by the tensor; `data` too when `owned`. */
struct vaccel_tflite_tensor {
	void *data;
	size_t size;
	bool owned;
	int nr_dims;
	int32_t *dims;
	enum vaccel_tflite_data_type data_type;
};

int vaccel_tflite_tensor_init(struct vaccel_tflite_tensor *tensor, int nr_dims,
			      const int32_t *dims,
			      enum vaccel_tflite_data_type type);
int vaccel_tflite_tensor_release(struct vaccel_tflite_tensor *tensor);
int vaccel_tflite_tensor_new(struct vaccel_tflite_tensor **tensor, int nr_dims,
			     const int32_t *dims,
			     enum vaccel_tflite_data_type type);
int vaccel_tflite_tensor_allocate(struct vaccel_tflite_tensor **tensor,
				  int nr_dims, const int32_t *dims,
				  enum vaccel_tflite_data_type type,
				  size_t total_size);
int vaccel_tflite_tensor_delete(struct vaccel_tflite_tensor *tensor);
int vaccel_tflite_tensor_set_data(struct vaccel_tflite_tensor *tensor,
				  void *data, size_t size);
int vaccel_tflite_tensor_take_data(struct vaccel_tflite_tensor *tensor,
				   void **data, size_t *size);

int vaccel_tflite_model_load(struct vaccel_session *sess,
			     struct vaccel_resource *model);
/* outputs[i] receives a heap tensor the caller frees with vaccel_tflite_tensor_delete(). */
int vaccel_tflite_model_run(struct vaccel_session *sess,
			    const struct vaccel_resource *model,
			    struct vaccel_tflite_tensor *const *in,
			    int nr_inputs, struct vaccel_tflite_tensor **out,
			    int nr_outputs, uint8_t *status);
int vaccel_tflite_model_unload(struct vaccel_session *sess,
			       struct vaccel_resource *model);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_TFLITE_H */
