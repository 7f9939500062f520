/* SPDX-License-Identifier: Apache-2.0 */
#ifndef VACCEL_OPS_NOOP_H
#define VACCEL_OPS_NOOP_H

#include "../session.h"

#ifdef __cplusplus
extern "C" {
#endif

int vaccel_noop(struct vaccel_session *sess);

#ifdef __cplusplus
}
#endif

#endif /* VACCEL_OPS_NOOP_H */
