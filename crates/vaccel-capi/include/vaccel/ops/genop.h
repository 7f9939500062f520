/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_GENOP_H
#define VACCEL_OPS_GENOP_H

#include "../arg.h"
#include "../session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Generic operation: read[0] is a VACCEL_ARG_UINT8 vaccel_op_type_t, the rest are the op's
 * operands in upstream's layouts; outputs are written into the `write` buffers. */
int vaccel_genop(struct vaccel_session *sess, struct vaccel_arg *read,
		 int nr_read, struct vaccel_arg *write, int nr_write);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_GENOP_H */
