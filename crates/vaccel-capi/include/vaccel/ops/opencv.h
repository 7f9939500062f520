/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_OPENCV_H
#define VACCEL_OPS_OPENCV_H

#include "../arg.h"
#include "../session.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The arguments of the OpenCV op passed through to the plugin. */
int vaccel_opencv_unpack(struct vaccel_session *sess, struct vaccel_arg *read,
			 int nr_read, struct vaccel_arg *write, int nr_write);
/* vaccel-rs: upstream defines this without declaring it; same as vaccel_opencv_unpack(). */
int vaccel_opencv(struct vaccel_session *sess, struct vaccel_arg *read,
		  int nr_read, struct vaccel_arg *write, int nr_write);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_OPENCV_H */
