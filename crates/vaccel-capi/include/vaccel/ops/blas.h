/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_BLAS_H
#define VACCEL_OPS_BLAS_H

#include "../session.h"
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C = alpha * A x B + beta * C, row-major; A is m x k (stride lda), B k x n (ldb),
 * C m x n (ldc). The array sizes are derived from the dimensions and strides. */
int vaccel_sgemm(struct vaccel_session *sess, int64_t m, int64_t n, int64_t k,
		 float alpha, float *a, int64_t lda, float *b, int64_t ldb,
		 float beta, float *c, int64_t ldc);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_BLAS_H */
